"""Management tools over MCP: list, status, validate, request approval, activate, disable, roll back, unload.

They are ordinary tools of source `internal`, tagged `admin`, so they go through the same pipeline
as every other call (policy, limits, audit): the built-in policy lets only `admin` see or call a
tool tagged `admin`. Each answers with text for a model and the same facts as structured content.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types as types

from modules.approval_elicit import request_approval
from modules.lifecycle import ModuleLifecycle, ModuleStateError, why_not_loaded
from modules.manifest import MODULE_NAME_PATTERN, ModuleRef
from modules.registry import ModuleRecord
from server.policy.builtin import ADMIN_TAG
from tools.errors import ToolFailure
from tools.model import CallContext, Tool, ToolAnnotations, ToolOutcome, ToolResult

__all__ = ["INTERNAL_SOURCE", "admin_tools", "describe_record"]

INTERNAL_SOURCE = "internal"

Lifecycle = Callable[[], ModuleLifecycle]
# Brings the running server in line with the registry right away (instead of at the next poll).
Sync = Callable[[], Awaitable[dict[str, str]]]

_REF = {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,39}@[0-9A-Za-z.-]{1,40}$", "description": "NAME@VERSION"}
_NAME = {"type": "string", "pattern": MODULE_NAME_PATTERN, "description": "module name"}


def describe_record(record: ModuleRecord, loaded: Mapping[str, str] | None = None) -> dict[str, Any]:
    serving = (loaded or {}).get(record.name) == record.version
    summary: dict[str, Any] = {
        "module": str(record.ref),
        "state": record.state,
        "serving": serving,
        "why": "serving" if serving else why_not_loaded(record),
        "approved_by": record.approved_by,
    }
    if record.validation is not None:
        summary["validation"] = {
            key: record.validation.get(key) for key in ("passed", "problems", "warnings", "tools", "tests")
        }
    if record.pins is not None:
        summary["pinned"] = {"files": len(record.pins.files), "tools": sorted(record.pins.tools)}
    return summary


def _answer(text: str, data: dict[str, Any]) -> ToolResult:
    body = json.dumps(data, indent=1, default=str)
    return ToolResult(content=[types.TextContent(type="text", text=f"{text}\n{body}")], structured=data)


def _ref(arguments: Mapping[str, Any]) -> ModuleRef:
    try:
        return ModuleRef.parse(str(arguments["module"]))
    except ValueError as exc:
        raise ToolFailure(str(exc)) from None


def admin_tools(lifecycle: Lifecycle, sync: Sync, loaded: Callable[[], dict[str, str]]) -> list[Tool]:
    """The management tools; `lifecycle` is resolved per call (it exists once the server started)."""

    def guarded(
        run: Callable[[ModuleLifecycle, Mapping[str, Any], CallContext], Awaitable[ToolOutcome]],
    ) -> Callable[[Mapping[str, Any], CallContext], Awaitable[ToolOutcome]]:
        async def execute(arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
            try:
                return await run(lifecycle(), arguments, context)
            except ModuleStateError as exc:
                raise ToolFailure(exc.message) from None

        return execute

    def actor(context: CallContext) -> str:
        return f"{context.principal.id} (mcp)"

    async def list_modules(life: ModuleLifecycle, _: Mapping[str, Any], __: CallContext) -> ToolOutcome:
        records = await life.scan()
        serving = loaded()
        rows = [describe_record(record, serving) for record in records]
        lines = [f"{row['module']}: {row['state']} — {row['why']}" for row in rows] or ["no modules"]
        data = {"modules": [{k: row[k] for k in ("module", "state", "serving", "why")} for row in rows]}
        return _answer("\n".join(lines), data)

    async def status(life: ModuleLifecycle, arguments: Mapping[str, Any], _: CallContext) -> ToolOutcome:
        ref = _ref(arguments)
        record = await life.record(ref)
        events = await life.registry.events(ref.name, limit=10)
        data = describe_record(record, loaded())
        data["events"] = [{"event": e.event, "version": e.version, "actor": e.actor, "at": e.at} for e in events]
        return _answer(f"{ref}: {data['state']} — {data['why']}", data)

    async def validate(life: ModuleLifecycle, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        ref = _ref(arguments)
        report = await life.validate(ref, actor=actor(context))
        problems = report["problems"]
        lines = [f"[{p['stage']}] {p['where']}: {p['what']}" + (f" — {p['fix']}" if p["fix"] else "") for p in problems]
        head = f"{ref} validated; request approval next" if report["passed"] else f"{ref} failed validation"
        data = {key: report[key] for key in ("passed", "problems", "warnings", "tools", "tests", "seconds")}
        return _answer("\n".join([head, *lines]), data)

    async def approval(life: ModuleLifecycle, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        return await request_approval(life, _ref(arguments), context)

    async def activate(life: ModuleLifecycle, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        ref = _ref(arguments)
        await life.activate(ref, actor=actor(context))
        return await _settled(life, ref.name, f"{ref} activated")

    async def disable(life: ModuleLifecycle, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        ref = _ref(arguments)
        reason = str(arguments.get("reason") or "disabled by an administrator")[:500]
        await life.disable(ref, actor=actor(context), reason=reason)
        return await _settled(life, ref.name, f"{ref} disabled")

    async def rollback(life: ModuleLifecycle, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        ref = await life.rollback(str(arguments["name"]), actor=actor(context))
        return await _settled(life, ref.name, f"rolled back to {ref}")

    async def unload(life: ModuleLifecycle, arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        ref = await life.unload(str(arguments["name"]), actor=actor(context))
        return await _settled(life, ref.name, f"{ref} unloaded")

    async def _settled(life: ModuleLifecycle, name: str, done: str) -> ToolResult:
        serving = await sync()
        versions = [describe_record(r, serving) for r in await life.registry.versions(name)]
        now = serving.get(name)
        text = f"{done}; {name} now serves {now}" if now else f"{done}; {name} serves nothing"
        failed = [v for v in versions if v["state"] == "disabled"]
        return _answer(text, {"serving": now, "versions": versions, "disabled": [v["module"] for v in failed]})

    def tool(name: str, description: str, properties: dict[str, Any], run: Any, *, read_only: bool) -> Tool:
        return Tool(
            name=name,
            description=description,
            input_schema={
                "type": "object",
                "properties": properties,
                "required": sorted(key for key in properties if key != "reason"),
                "additionalProperties": False,
            },
            executor=guarded(run),
            source=INTERNAL_SOURCE,
            annotations=ToolAnnotations(read_only=read_only, destructive=False, open_world=False),
            tags=(ADMIN_TAG,),
        )

    return [
        tool("modules_list", "List every module version with its state and why it is or is not serving.",
             {}, list_modules, read_only=True),
        tool("modules_status", "One module version: state, validation problems, approval pins, recent events.",
             {"module": _REF}, status, read_only=True),
        tool("modules_validate", "Validate a module version in the sandbox (manifest, lint, import, its tests).",
             {"module": _REF}, validate, read_only=False),
        tool("modules_request_approval", "Ask the human at the host to approve a validated module version.",
             {"module": _REF}, approval, read_only=False),
        tool("modules_activate", "Hot-load an approved module version; the version it replaces stops serving.",
             {"module": _REF}, activate, read_only=False),
        tool("modules_disable", "Disable a module version (it stops serving until validated and approved again).",
             {"module": _REF, "reason": {"type": "string", "maxLength": 500}}, disable, read_only=False),
        tool("modules_rollback", "Serve the previous approved version of a module instead of the current one.",
             {"name": _NAME}, rollback, read_only=False),
        tool("modules_unload", "Stop serving a module (its active version goes back to approved).",
             {"name": _NAME}, unload, read_only=False),
    ]  # fmt: skip
