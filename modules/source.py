"""The module tool source: installs the management tools and, once the server runs, the modules.

At start-up (a runtime starter, after storage and the audit log are open) it opens the module
registry, registers versions found on disk as drafts, loads every active version that is intact,
and logs every other version with why it is not serving. Then it polls: a registry change made
by another process (`toolkiln modules approve|activate|disable|rollback`) is picked up within
`poll_interval_s`, and every loaded version's files are re-hashed on the same beat, so a file
edited after approval disables its module without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import structlog

from modules.admin_tools import admin_tools
from modules.broker import Broker, Injector
from modules.credentials import ModuleCredentials, ModuleInjector, no_credential_store
from modules.lifecycle import AuditSink, ModuleLifecycle, StartWorker, Worker, why_not_loaded
from modules.loader import ModuleLoader
from modules.manifest import ModuleRef
from modules.registry import ModuleRegistry
from modules.sandbox.report import SandboxReport
from modules.sandbox.spec import TestReport, ToolSpec, WorkerSpec
from server.audit.ledger import Ledger
from server.runtime import Runtime
from tools.model import ToolResult

__all__ = ["ModuleSource", "install_modules", "ledger_audit", "sandbox_starter"]

log = structlog.get_logger("toolkiln.modules")


def ledger_audit(ledger: Ledger) -> AuditSink | None:
    """An audit sink appending `event` records to the ledger's audit chain (None when it is off)."""
    recorder = ledger.recorder
    if recorder is None:
        return None

    async def append(event: str, ref: ModuleRef, actor: str, detail: dict[str, Any]) -> None:
        call_id = f"module-{uuid.uuid4().hex[:16]}"

        def op(conn: sqlite3.Connection, batch: Any) -> int:
            return recorder.log.append(
                conn, batch, kind="event", call_id=call_id, principal=actor[:128], tool=f"module:{ref}",
                status=event, fields={"source": f"module:{ref.name}", "detail": detail},
            )  # fmt: skip

        await recorder.writer.run(op)

    return append


class _BrokeredWorker:
    """A worker together with its broker, which closes when the worker stops, and the injector
    whose caller each call sets (per-principal credentials)."""

    def __init__(self, worker: Worker, broker: Broker, credentials: ModuleInjector | None = None) -> None:
        self._worker = worker
        self._broker = broker
        self._credentials = credentials

    async def tools(self) -> Sequence[ToolSpec]:
        return await self._worker.tools()

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float | None = None) -> ToolResult:
        if self._credentials is None:
            return await self._worker.call(name, arguments, timeout_s)
        async with self._credentials.serving():
            return await self._worker.call(name, arguments, timeout_s)

    async def run_tests(self, timeout_s: float | None = None) -> TestReport:
        return await self._worker.run_tests(timeout_s)

    async def stop(self) -> None:
        try:
            await self._worker.stop()
        finally:
            await self._broker.aclose()


def sandbox_starter(
    loader: ModuleLoader | None = None,
    injector: Injector | None = None,
    *,
    credentials: ModuleCredentials | None = None,
) -> StartWorker:
    """Starts a worker in the strongest sandbox tier the host offers, with a broker for the
    module's allowlist and credential handles and its events routed to `loader`.

    Credentials come from `injector` when given, else from the store (`credentials`) as the
    module's manifest places them; with neither, a request needing one is refused (the CLI
    validating a module: its tests answer from mocks). The host is probed on first use, so a
    server without modules never pays for the probe.
    """
    from modules.sandbox import sandbox_report, start_worker

    report: list[SandboxReport] = []

    async def start(spec: WorkerSpec) -> Worker:
        if not report:
            report.append(await asyncio.to_thread(sandbox_report))
            log.info("modules_sandbox", tier=report[0].tier)
        scope: ModuleInjector | None = None
        module_injector = injector
        if spec.credentials and injector is None:
            scope = None if credentials is None else await credentials.injector(spec)
            module_injector = no_credential_store if scope is None else scope
        broker = Broker(spec.egress, credentials=spec.credentials, injector=module_injector)
        try:
            worker = await start_worker(
                spec, broker=broker, on_event=None if loader is None else loader.on_event, report=report[0]
            )
        except BaseException:
            await broker.aclose()
            raise
        return _BrokeredWorker(worker, broker, scope)

    return start


class ModuleSource:
    """Owns the lifecycle and loader of one runtime."""

    def __init__(
        self, runtime: Runtime, start_worker: StartWorker | None = None, injector: Injector | None = None
    ) -> None:
        self.runtime = runtime
        self._injector = injector
        self.settings = runtime.settings.modules
        self._start_worker = start_worker
        self._lifecycle: ModuleLifecycle | None = None
        self.loader: ModuleLoader | None = None
        self._poller: asyncio.Task[None] | None = None
        self._revision = 0

    @property
    def lifecycle(self) -> ModuleLifecycle:
        if self._lifecycle is None:
            raise RuntimeError("the module source has not started")
        return self._lifecycle

    def serving(self) -> dict[str, str]:
        """Module name → the version whose tools are registered now."""
        return {} if self.loader is None else {name: m.version for name, m in self.loader.loaded.items()}

    def _taken_names(self) -> dict[str, str]:
        return {
            tool.name: tool.source for tool in self.runtime.registry.tools() if not tool.source.startswith("module:")
        }

    async def start(self) -> None:
        data_dir = self.runtime.settings.server.data_dir
        registry = await ModuleRegistry.open(data_dir)
        self.runtime.closers.append(self.close)
        self._lifecycle = ModuleLifecycle(
            data_dir,
            registry,
            self.settings,
            audit=ledger_audit(self.runtime.ledger),
            taken_names=self._taken_names,
        )
        self.loader = ModuleLoader(self._lifecycle, self.runtime.registry, None)
        stored = None if self._injector is not None else ModuleCredentials(self.runtime.credentials)
        starter = self._start_worker or sandbox_starter(self.loader, self._injector, credentials=stored)
        self._lifecycle.start_worker = starter
        self.loader.start_worker = starter
        records = await self._lifecycle.scan()
        self._revision = await registry.revision()
        await self.loader.check_integrity(actor="startup")
        serving = self.serving()
        for record in await registry.versions():
            if serving.get(record.name) != record.version:
                log.info("module_not_loaded", module=str(record.ref), state=record.state, why=why_not_loaded(record))
        log.info("modules_started", versions=len(records), serving=serving)
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def sync(self) -> dict[str, str]:
        """Apply registry changes now (the management tools call this after a change)."""
        if self.loader is not None:
            await self.loader.sync()
            self._revision = await self.lifecycle.registry.revision()
        return self.serving()

    async def _poll(self) -> None:
        assert self.loader is not None
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                revision = await self.lifecycle.registry.revision()
                if revision != self._revision:
                    self._revision = revision
                    await self.loader.sync()
                await self.loader.check_integrity()
            except Exception:  # a poll that fails is retried on the next beat
                log.exception("modules_poll_failed")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.loader is not None:
            await self.loader.close()
        if self._lifecycle is not None:
            await self._lifecycle.registry.close()


def install_modules(
    runtime: Runtime, *, start_worker: StartWorker | None = None, injector: Injector | None = None
) -> ModuleSource:
    """Start the modules with the server (and register the management tools when configured).

    Modules' credentials come from the runtime's vault, placed as each manifest declares
    (`modules.credentials`); `injector` replaces that (tests), `start_worker` the sandbox (benchmarks).
    """
    source = ModuleSource(runtime, start_worker, injector)
    if runtime.settings.modules.management_tools:
        runtime.registry.replace_source("internal", admin_tools(lambda: source.lifecycle, source.sync, source.serving))
    runtime.starters.append(source.start)
    return source
