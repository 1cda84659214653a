"""Installing the configured OpenAPI sources into a registry, each isolated from the others.

A source that fails to load is logged with its precise reason and contributes no tools; the
other sources load normally, and the broken one is retried when its file changes or on reload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog

from tools.errors import SetupError
from tools.openapi.reload import Reloader
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.source import OpenApiSource
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from credentials.vault import Vault

__all__ = ["InstalledSources", "install_openapi"]

log = structlog.get_logger("toolkiln.openapi")


@dataclass
class InstalledSources:
    sources: list[OpenApiSource] = field(default_factory=list)
    reloader: Reloader | None = None

    async def aclose(self) -> None:
        if self.reloader is not None:
            # Joining waits for a rebuild in progress; keep the event loop free meanwhile.
            await anyio.to_thread.run_sync(self.reloader.stop)
            self.reloader = None
        for source in self.sources:
            await source.aclose()


def install_openapi(
    entries: Sequence[tuple[OpenApiSourceSettings, Path | None]],
    registry: ToolRegistry,
    *,
    run_dir: Path | None = None,
    cache_dir: Path | None = None,
    watch: bool = False,
    poll_interval_s: float = 1.0,
    credentials: Vault | None = None,
) -> InstalledSources:
    """Load every (settings, base folder) pair; with `watch`, start the reloader too.

    `cache_dir` keeps converted specs between runs (see `tools.openapi.cache`); `credentials` is
    the store `[sources.auth]` handles are looked up in.
    """
    installed = InstalledSources()
    taken: set[str] = set(registry.sources())
    for settings, base_dir in entries:
        name, counter = settings.source_name, 2
        while name in taken:
            name, counter = f"{settings.source_name}-{counter}", counter + 1
        taken.add(name)
        if name != settings.source_name:
            settings = settings.model_copy(update={"name": name})
        source = OpenApiSource(settings, registry, base_dir=base_dir, cache_dir=cache_dir, credentials=credentials)
        try:
            source.load()
        except SetupError as exc:
            source.last_error = exc.message
            source.mark_seen()
            log.error("openapi_source_failed", source=name, error=exc.message)
        installed.sources.append(source)
    if watch and installed.sources:
        installed.reloader = Reloader(installed.sources, run_dir=run_dir, poll_interval_s=poll_interval_s)
        installed.reloader.start()
    return installed
