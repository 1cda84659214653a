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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from tools.errors import SetupError
from tools.model import UPSTREAM_OPERATION, CallContext, Tool, ToolExecutor, ToolOutcome
from tools.openapi.build import build_spec
from tools.openapi.cache import ConversionCache
from tools.openapi.convert import Conversion, ToolDraft
from tools.openapi.errors import BaseUrlRefused
from tools.openapi.executor import make_executor
from tools.openapi.plan import OperationPlan
from tools.openapi.report import ConversionReport
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.upstream import Upstream
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from credentials.oauth import TokenSource
    from credentials.vault import Vault
    from tools.openapi.auth import SourceAuth

__all__ = ["OpenApiSource"]

log = structlog.get_logger("toolkiln.openapi")
_CACHE_WRITE_DELAY_S = 5.0


class OpenApiSource:
    """One configured spec and the tools it currently contributes to the registry."""

    def __init__(
        self,
        settings: OpenApiSourceSettings,
        registry: ToolRegistry,
        *,
        base_dir: Path | None = None,
        cache_dir: Path | None = None,
        credentials: Vault | None = None,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self._tokens: TokenSource | None = None
        self.cache = ConversionCache(cache_dir) if cache_dir is not None else None
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
        self._cache_write: _DeferredWrite | None = None
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
            conversion, base_url, sha256 = self._convert()
            upstream, fresh = self._upstream_for(base_url, conversion.report)
            try:
                auth = self._auth_for(conversion, upstream)
                tools = [self._tool(draft, upstream, auth) for draft in conversion.drafts]
                self.registry.replace_source(self.name, tools)
            except BaseException:
                if fresh:
                    self._retired.append(upstream)
                raise
            if fresh and self._upstream is not None:
                self._retired.append(self._upstream)
            self._upstream = upstream
            self._upstream_key = base_url
            self._stamp = stamp
            self.loaded_sha256 = sha256
            self.report = conversion.report
            self.last_error = None
        report = conversion.report
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

    def flush_cache(self) -> None:
        """Write a fresh conversion to the cache now if it is still pending (or wait for it)."""
        pending = self._cache_write
        if pending is not None:
            pending.run_now()

    async def aclose(self) -> None:
        """Close every connection pool this source opened (after finishing a cache write)."""
        await anyio.to_thread.run_sync(self.flush_cache)
        upstreams = [*self._retired, *([self._upstream] if self._upstream is not None else [])]
        self._retired, self._upstream = [], None
        for upstream in upstreams:
            await upstream.aclose()
        if self._tokens is not None:
            await self._tokens.aclose()
            self._tokens = None

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

    def _convert(self) -> tuple[Conversion, str | None, str]:
        """(conversion, base URL, spec sha256), from the cache when the same spec was converted."""
        key, data = None, b""
        path = self.spec_path
        if self.cache is not None and path is not None and not self.settings.allow_external_refs:
            try:
                with path.open("rb") as handle:
                    data = handle.read(self.settings.max_spec_bytes + 1)
            except OSError:
                data = b""  # the build below reports the problem precisely
            if data and len(data) <= self.settings.max_spec_bytes:
                sha256 = hashlib.sha256(data).hexdigest()
                key = self.cache.key(sha256, self.settings)
                hit = self.cache.get(self.name, key)
                if hit is not None:
                    log.debug("openapi_cache_hit", source=self.name)
                    return hit.conversion, hit.base_url, sha256
        # The bytes read for the cache key are parsed as they are, not read again and held twice.
        built = build_spec(self.settings, base_dir=self.base_dir, file_bytes=data or None)
        del data
        # Only the results are kept: the parsed document (~7x the spec's bytes) is freed here.
        conversion, base_url, sha256 = built.conversion, built.base_url, built.loaded.sha256
        del built
        if self.cache is not None and key is not None:
            # Keyed by what was actually converted, in case the file changed in between.
            cache, name, fresh_key = self.cache, self.name, self.cache.key(sha256, self.settings)
            self._cache_write = _DeferredWrite(
                lambda: cache.put(name, fresh_key, conversion, base_url), _CACHE_WRITE_DELAY_S
            )
        return conversion, base_url, sha256

    def _upstream_for(self, base_url: str | None, report: ConversionReport) -> tuple[Upstream, bool]:
        if base_url is None:
            raise BaseUrlRefused(f"source '{self.name}': {report.base_url_from}")
        if self._upstream is not None and self._upstream_key == base_url:
            return self._upstream, False
        return Upstream.from_settings(base_url, self.settings), True

    def _auth_for(self, conversion: Conversion, upstream: Upstream) -> SourceAuth | None:
        """The source's upstream auth, when `[sources.auth]` configures any (imported only then).

        Raises:
            CredentialSetupError: a handle names no usable scheme, or there is no credential store.
        """
        if not self.settings.auth:
            return None
        from credentials.oauth import TokenSource
        from tools.openapi.auth import SourceAuth

        if self._tokens is None and self.credentials is not None:
            self._tokens = TokenSource(self.credentials, allow_private_hosts=self.settings.allow_private_hosts)
        schemes = conversion.security_schemes
        return SourceAuth.build(self.name, self.settings.auth, schemes, self.credentials, upstream, self._tokens)

    def _tool(self, draft: ToolDraft, upstream: Upstream, auth: SourceAuth | None = None) -> Tool:
        return Tool(
            name=draft.name,
            title=draft.title,
            description=draft.description,
            input_schema=draft.input_schema,
            output_schema=draft.output_schema,
            annotations=draft.annotations,
            tags=draft.tags,
            executor=_LazyExecutor(draft.plan, upstream, auth),
            source=self.name,
            meta={
                "operation": f"{draft.plan.method} {draft.plan.path}",
                "operation_id": draft.plan.operation_id,
                # What the call reaches: two tools on one upstream operation (the same API served
                # twice, under two prefixes) are authorized together, the stricter grant winning.
                UPSTREAM_OPERATION: f"{upstream.origin}{upstream.base_path} {draft.plan.method} {draft.plan.path}",
            },
        )


class _DeferredWrite:
    """Runs `write` once: after `delay` seconds on a timer thread, or earlier via `run_now`.

    Serializing a large conversion competes for the interpreter with the server's start-up (the
    first tools/list), so it waits until that is over; shutdown runs it at once.
    """

    def __init__(self, write: Callable[[], None], delay: float) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(delay, self.run_now)
        self._timer.name = "openapi-cache-write"
        self._timer.daemon = True
        self._timer.start()

    def run_now(self) -> None:
        self._timer.cancel()
        with self._lock:
            if not self._done:
                self._done = True
                self._write()


class _LazyExecutor:
    """Compiles the operation's executor on its first call.

    A 1,000-operation spec is served at once while most tools are never called; compiling them
    all would delay the first tools/list. The corpus test compiles every plan, so a plan the
    executor rejects is still caught before release, not by a caller.
    """

    __slots__ = ("_auth", "_executor", "_plan", "_upstream")

    def __init__(self, plan: OperationPlan, upstream: Upstream, auth: SourceAuth | None = None) -> None:
        self._plan = plan
        self._upstream = upstream
        self._auth = auth
        self._executor: ToolExecutor | None = None

    async def __call__(self, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        executor = self._executor
        if executor is None:
            auth = self._auth
            made = (
                make_executor(self._plan, self._upstream) if auth is None else auth.executor(self._plan, self._upstream)
            )
            executor = self._executor = made
        return await executor(arguments, context)
