"""Installs every configured tool source into a runtime."""

from __future__ import annotations

from collections.abc import Sequence

from server.runtime import Runtime
from tools.openapi.settings import OpenApiSourceSettings

__all__ = ["install_sources"]


def install_sources(
    runtime: Runtime,
    *,
    conformance_fixtures: bool = False,
    specs: Sequence[OpenApiSourceSettings] = (),
    watch: bool = False,
) -> None:
    """Register every source's tools. `specs` come from the command line (paths relative to the
    working directory); `watch` rebuilds OpenAPI sources on file changes and SIGHUP (`serve`)."""
    if conformance_fixtures or runtime.settings.conformance_fixtures:
        from server.fixtures import install_fixtures

        install_fixtures(runtime)
    settings = runtime.settings
    if settings.modules.enabled:
        from modules.source import install_modules

        install_modules(runtime)
    if settings.sources or specs:
        from tools.openapi.install import install_openapi

        config_dir = settings.source_path.parent if settings.source_path is not None else None
        entries = [(source, config_dir) for source in settings.sources] + [(spec, None) for spec in specs]
        data_dir = settings.server.data_dir
        installed = install_openapi(
            entries,
            runtime.registry,
            run_dir=data_dir / "run",
            cache_dir=data_dir / "cache" / "openapi",
            watch=watch,
            credentials=runtime.credentials,
        )
        runtime.closers.append(installed.aclose)
