"""Hot-loading: the running server follows the registry's `active` versions.

For each module name the registry marks active, `sync` makes sure exactly that version serves:
it checks the files against the approval pins, starts a worker in the sandbox, checks the tools
the code declares against the pinned definitions, then swaps the module's tools into the tool
registry in one step (`replace_source`, so clients get one list-changed notification) and only
then stops the worker of the version it replaced. Any failure on the way (THREATS G4: an import
that raises, exits or has side effects; G5: a name collision or a changed definition) disables
the new version with the reason and leaves the previous one serving; nothing is half-registered.

Calls are counted: a failed call adds a point (a success clears them), a sandbox violation adds
`violation_weight` points that stay; at `failure_threshold` the version is disabled.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
import structlog

from modules.approval import drift, hash_tools
from modules.credentials import calling_as
from modules.lifecycle import ModuleLifecycle, StartWorker, Worker, spec_of
from modules.manifest import ModuleManifest, ModuleTool
from modules.registry import ModuleRecord
from modules.sandbox.errors import SandboxViolation
from modules.sandbox.spec import SandboxEvent
from modules.validate import compare_tools
from tools.errors import ToolFailure, ToolkilnError
from tools.model import CallContext, Tool, ToolAnnotations, ToolResult
from tools.registry import ToolRegistry

__all__ = ["LoadedModule", "ModuleLoader", "to_tool_result"]

log = structlog.get_logger("toolkiln.modules")

MODULE_TAG = "module"


@dataclass(slots=True)
class LoadedModule:
    record: ModuleRecord
    manifest: ModuleManifest
    worker: Worker
    failures: int = 0
    violations: int = 0
    disabling: bool = False
    calls: int = 0
    last_error: str | None = None
    tools: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> str:
        return self.record.version


def to_tool_result(value: Any) -> ToolResult:
    """What a worker answers → a `ToolResult`: text for a string, structured content for JSON."""
    if isinstance(value, ToolResult):
        return value
    if isinstance(value, str):
        return ToolResult.text(value)
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    structured = value if isinstance(value, dict) else {"result": value}
    return ToolResult(content=[types.TextContent(type="text", text=text)], structured=structured)


def _annotations(tool: ModuleTool) -> ToolAnnotations:
    a = tool.annotations
    return ToolAnnotations(
        title=a.title,
        read_only=a.read_only,
        destructive=a.destructive,
        idempotent=a.idempotent,
        open_world=a.open_world,
    )


class ModuleLoader:
    """Keeps the tool registry in line with the registry's active module versions."""

    def __init__(self, lifecycle: ModuleLifecycle, registry: ToolRegistry, start_worker: StartWorker | None) -> None:
        self.lifecycle = lifecycle
        self.registry = registry
        self.start_worker = start_worker
        self.settings = lifecycle.settings
        self.loaded: dict[str, LoadedModule] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def sync(self, *, actor: str = "server") -> None:
        """Load, replace or unload modules until what serves is what the registry marks active."""
        async with self._lock:
            active = await self.lifecycle.registry.active()
            for name in [name for name in self.loaded if name not in active]:
                await self._unload(name, why="no longer active")
            for name, record in sorted(active.items()):
                current = self.loaded.get(name)
                if current is None or current.version != record.version:
                    await self._load(record, current, actor=actor)

    async def check_integrity(self, *, actor: str = "server") -> None:
        """Re-hash every loaded version; one that changed since approval is disabled and unloaded."""
        for loaded in list(self.loaded.values()):
            problems = await asyncio.to_thread(self.lifecycle.tampering, loaded.record)
            if problems:
                await self.lifecycle.disable_tampered(loaded.record, problems, actor=actor)
        await self.sync(actor=actor)

    async def _load(self, record: ModuleRecord, current: LoadedModule | None, *, actor: str) -> None:
        ref = record.ref
        problems = await asyncio.to_thread(self.lifecycle.tampering, record)
        if problems:
            await self.lifecycle.disable_tampered(record, problems, actor=actor)
            await self._keep(current, actor)
            return
        assert record.manifest is not None
        assert record.pins is not None
        manifest = ModuleManifest.stored(record.manifest)
        if self.start_worker is None:
            await self._fail(record, current, "no sandbox is available on this host", actor, event="load_failed")
            return
        try:
            worker = await self.start_worker(spec_of(manifest, self.lifecycle.directory(ref)))
        except ToolkilnError as exc:
            await self._fail(record, current, exc.message, actor, event="load_failed")
            return
        loaded = LoadedModule(record=record, manifest=manifest, worker=worker)
        try:
            enumerated = list(await worker.tools())
            mismatch = [f"{p['where']}: {p['what']}" for p in compare_tools(manifest, enumerated)]
            mismatch += drift(record.pins.tools, hash_tools(t.definition() for t in manifest.tools), "tool definition")
            if mismatch:
                await worker.stop()
                why = "tool definitions differ from the approval (" + "; ".join(mismatch[:5]) + ")"
                await self._fail(record, current, why + "; validate and approve it again", actor, event="tampered")
                return
            tools = [self._tool(loaded, tool) for tool in manifest.tools]
            # One atomic swap: the old version's tools go and the new ones come in one change.
            self.registry.replace_source(manifest.source, tools)
        except ToolkilnError as exc:
            await worker.stop()
            await self._fail(record, current, exc.message, actor, event="load_failed")
            return
        except BaseException:
            await worker.stop()
            raise
        loaded.tools = tuple(tool.name for tool in tools)
        self.loaded[record.name] = loaded
        if current is not None:
            await current.worker.stop()
        await self.lifecycle.note("loaded", ref, actor, {"tools": list(loaded.tools)})

    async def _fail(
        self, record: ModuleRecord, current: LoadedModule | None, why: str, actor: str, *, event: str
    ) -> None:
        await self.lifecycle.change(
            record.ref, event, actor, state="disabled", reason=why, detail={"reason": why[:500]}
        )
        await self._keep(current, actor)

    async def _keep(self, current: LoadedModule | None, actor: str) -> None:
        """The version that was serving goes on serving, and the registry says so again."""
        if current is not None:
            await self.lifecycle.registry.activate(current.record.ref, actor=actor, event="kept_serving")
            await self.lifecycle.note("kept_serving", current.record.ref, actor, {})

    async def _unload(self, name: str, *, why: str) -> None:
        loaded = self.loaded.pop(name, None)
        if loaded is None:
            return
        self.registry.replace_source(loaded.manifest.source, [])
        await loaded.worker.stop()
        log.info("module_unloaded", module=f"{loaded.name}@{loaded.version}", why=why)

    def _tool(self, loaded: LoadedModule, tool: ModuleTool) -> Tool:
        timeout = loaded.manifest.limits.call_timeout_s or 30.0

        async def execute(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
            deadline = min(timeout, context.deadline_s or math.inf)
            loaded.calls += 1
            try:
                with calling_as(context.principal.id):
                    value = await loaded.worker.call(tool.name, dict(arguments), deadline)
            except SandboxViolation as exc:
                self._penalize(loaded, exc.message, violation=True)
                raise
            except ToolFailure as exc:
                self._penalize(loaded, exc.message, violation=False)
                raise
            loaded.failures = 0
            return to_tool_result(value)

        return Tool(
            name=tool.name,
            description=tool.description,
            input_schema=tool.input_schema,
            output_schema=tool.output_schema,
            annotations=_annotations(tool),
            title=tool.annotations.title,
            executor=execute,
            source=loaded.manifest.source,
            tags=(MODULE_TAG,),
            # The pipeline's deadline sits a little past the worker's, so the worker's own kill
            # (which records why) happens first.
            meta={"timeout_s": timeout + 1.0, "module": f"{loaded.name}@{loaded.version}"},
        )

    def on_event(self, event: SandboxEvent) -> None:
        """Sandbox events outside calls (a worker that died while idle) count like failed calls.

        Events of a call (`tool` set) are already counted from the error the call raised.
        """
        name, _, version = event.module.partition("@")
        loaded = self.loaded.get(name)
        if loaded is None or loaded.version != version or event.tool is not None:
            return
        if event.kind in ("started", "stopped"):
            return
        self._penalize(loaded, f"{event.kind}: {event.reason}", violation=event.kind == "violation")

    def _penalize(self, loaded: LoadedModule, why: str, *, violation: bool) -> None:
        if violation:
            loaded.violations += 1
        else:
            loaded.failures += 1
        loaded.last_error = why[:500]
        score = loaded.failures + loaded.violations * self.settings.violation_weight
        if score < self.settings.failure_threshold or loaded.disabling:
            return
        loaded.disabling = True
        reason = (
            f"auto-disabled after {loaded.failures} failed call(s) and {loaded.violations} sandbox violation(s)"
            f" (last: {loaded.last_error})"
        )
        task = asyncio.get_running_loop().create_task(self._auto_disable(loaded, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_disable(self, loaded: LoadedModule, reason: str) -> None:
        try:
            await self.lifecycle.disable(loaded.record.ref, actor="server", reason=reason, event="auto_disabled")
            await self.sync()
        except Exception:
            log.exception("module_auto_disable_failed", module=f"{loaded.name}@{loaded.version}")

    async def settle(self) -> None:
        """Wait for auto-disables already decided (tests, and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.settle()
        async with self._lock:
            for name in list(self.loaded):
                loaded = self.loaded.pop(name)
                await loaded.worker.stop()
