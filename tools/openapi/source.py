"""An OpenAPI document served as a tool source, rebuilt on change, keeping the last good tools.

A build is all or nothing: the spec is loaded, converted and given executors first, and only
then does `ToolRegistry.replace_source` swap the whole set in one step (clients get one
list-changed). A build that fails — unreadable spec, malformed document, refused base URL, a
name colliding with another source — changes nothing and is logged with its reason.

The source keeps one `Upstream` (one connection pool) for as long as its base URL and upstream
settings stay the same; a replaced one is closed when the source closes, not while calls made
through it may still be running.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import structlog

from tools.errors import SetupError
from tools.model import Tool, ToolExecutor
from tools.openapi.build import BuiltSpec, build_spec
from tools.openapi.convert import ToolDraft
from tools.openapi.errors import BaseUrlRefused
from tools.openapi.executor import make_executor
from tools.openapi.report import ConversionReport
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.upstream import Upstream
from tools.registry import ToolRegistry

__all__ = ["OpenApiSource"]

log = structlog.get_logger("toolkiln.openapi")


class OpenApiSource:
    """One configured spec and the tools it currently contributes to the registry."""

    def __init__(self, settings: OpenApiSourceSettings, registry: ToolRegistry, *, base_dir: Path | None = None):
        self.settings = settings
        self.registry = registry
        self.base_dir = base_dir
        self.name = settings.source_name
        self.report: ConversionReport | None = None
        self.last_error: str | None = None
        self.loaded_sha256: str | None = None
        self._upstream: Upstream | None = None
        self._upstream_key: str | None = None
        self._retired: list[Upstream] = []
        self._stamp: tuple[int, int] | None = None
        # A reload from the watcher thread and one from a signal must not interleave.
        self._lock = threading.Lock()

    @property
    def spec_path(self) -> Path | None:
        if self.settings.is_url:
            return None
        path = Path(self.settings.spec).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def load(self) -> ConversionReport:
        """Build the tools and swap them in.

        Raises:
            SetupError: `SpecInvalid`, `BaseUrlRefused` or `ToolNameCollision`; nothing changed.
        """
        with self._lock:
            stamp = self._stat()
            built = build_spec(self.settings, base_dir=self.base_dir)
            upstream, fresh = self._upstream_for(built)
            key = built.base_url
            try:
                tools = [self._tool(draft, upstream) for draft in built.conversion.drafts]
                self.registry.replace_source(self.name, tools)
            except BaseException:
                if fresh:
                    self._retired.append(upstream)
                raise
            if fresh and self._upstream is not None:
                self._retired.append(self._upstream)
            self._upstream = upstream
            self._upstream_key = key
            self._stamp = stamp
            self.loaded_sha256 = built.loaded.sha256
            self.report = built.conversion.report
            self.last_error = None
        report = built.conversion.report
        log.info(
            "openapi_source_loaded",
            source=self.name,
            spec=report.spec,
            tools=report.converted,
            skipped=report.skipped,
            flagged=report.flagged,
            base_url=report.base_url,
        )
        for operation in report.operations:
            if operation.flags:
                log.warning(
                    "openapi_text_flagged", source=self.name, operation=operation.operation, flags=operation.flags
                )
        return report

    def reload(self) -> bool:
        """Rebuild; on failure keep the last good tools and log why. Never raises a SetupError."""
        try:
            self.load()
        except SetupError as exc:
            self.last_error = exc.message
            self.mark_seen()
            log.error("openapi_reload_failed", source=self.name, error=exc.message, kept_tools=self._tool_count())
            return False
        return True

    def mark_seen(self) -> None:
        """Remember the file as it is now, so a broken spec is not retried until it changes."""
        self._stamp = self._stat()

    def changed_on_disk(self) -> bool:
        """Whether the spec file differs from the one last loaded (watch mode; files only)."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        path = self.spec_path
        if path is not None and self.loaded_sha256 is not None:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return False
            if digest == self.loaded_sha256:
                self._stamp = stamp  # touched, not changed
                return False
        return True

    async def aclose(self) -> None:
        """Close every connection pool this source opened."""
        upstreams = [*self._retired, *([self._upstream] if self._upstream is not None else [])]
        self._retired, self._upstream = [], None
        for upstream in upstreams:
            await upstream.aclose()

    def _tool_count(self) -> int:
        return len(self.registry.sources().get(self.name, ()))

    def _stat(self) -> tuple[int, int] | None:
        path = self.spec_path
        if path is None:
            return None
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _upstream_for(self, built: BuiltSpec) -> tuple[Upstream, bool]:
        settings = self.settings
        if built.base_url is None:
            raise BaseUrlRefused(f"source '{self.name}': {built.conversion.report.base_url_from}")
        if self._upstream is not None and self._upstream_key == built.base_url:
            return self._upstream, False
        return Upstream.from_settings(built.base_url, settings), True

    def _tool(self, draft: ToolDraft, upstream: Upstream) -> Tool:
        executor: ToolExecutor = make_executor(draft.plan, upstream)
        return Tool(
            name=draft.name,
            title=draft.title,
            description=draft.description,
            input_schema=draft.input_schema,
            output_schema=draft.output_schema,
            annotations=draft.annotations,
            tags=draft.tags,
            executor=executor,
            source=self.name,
            meta={"operation": f"{draft.plan.method} {draft.plan.path}", "operation_id": draft.plan.operation_id},
        )
