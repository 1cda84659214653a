"""Installs every configured tool source into a runtime."""

from __future__ import annotations

from server.runtime import Runtime

__all__ = ["install_sources"]


def install_sources(runtime: Runtime, *, conformance_fixtures: bool = False) -> None:
    if conformance_fixtures or runtime.settings.conformance_fixtures:
        from server.fixtures import install_fixtures

        install_fixtures(runtime)
