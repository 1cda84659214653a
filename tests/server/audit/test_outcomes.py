"""THREATS H U4: every way a call can end leaves an intent and an outcome with the right status.

Also: intents are committed before the executor runs, outcomes before the result returns, and a
store that cannot be written makes the call fail closed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest

from server.audit.writer import LedgerUnavailable
from tests.server.audit.support import call, make_runtime, records
from tools.errors import ToolHidden, ToolTimeout, UnknownTool, UpstreamFailure
from tools.model import CallContext, Tool, ToolAnnotations, ToolResult

pytestmark = pytest.mark.anyio

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "why": {"type": "string"}, "password": {"type": "string"}},
}


class Upstream503(UpstreamFailure):
    def __init__(self) -> None:
        super().__init__("Upstream answered 503 Service Unavailable")


def _tool(name: str, executor: Any, **extra: Any) -> Tool:
    return Tool(name=name, description=name, input_schema=SCHEMA, executor=executor, source="test", **extra)


async def _ok(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


async def _failing(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    raise Upstream503


async def _error_result(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("the upstream said no", is_error=True)


async def _crash(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    raise RuntimeError("boom")


started = anyio.Event()


async def _hang(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    started.set()
    await anyio.Event().wait()  # never set: only the deadline or a cancel ends this call
    raise AssertionError("unreachable")


TOOLS = [
    _tool("ok", _ok),
    _tool("quick", _ok, annotations=ToolAnnotations(read_only=True)),
    _tool("upstream", _failing),
    _tool("refuses", _error_result),
    _tool("crashes", _crash),
    _tool("hangs", _hang, meta={"timeout_s": 0.2}),
    _tool("costly", _ok, cost=50),
    _tool("generated", _ok, annotations=ToolAnnotations(read_only=True)),
]

POLICY = {
    "rules": [
        {
            "id": "need-reason",
            "effect": "deny",
            "roles": ["admin"],
            "tools": ["ok"],
            "when": {"arg": "why", "equals": ""},
        }
    ]
}


async def test_every_outcome_kind_writes_an_intent_and_an_outcome_with_the_right_status(tmp_path: Path) -> None:
    global started
    runtime = make_runtime(
        tmp_path,
        TOOLS,
        policy=POLICY,
        limits={"rules": [{"name": "quick-once", "tools": ["quick"], "limit": 1, "period_s": 3600}]},
        quotas={"daily": 10},
    )
    async with runtime.running():
        assert not (await call(runtime, "ok", {"n": 1, "why": "audit"})).is_error  # type: ignore[union-attr]
        with pytest.raises(ToolHidden):
            await call(runtime, "ok", {"why": ""})  # denied by the conditional rule
        with pytest.raises(ToolHidden):
            await call(runtime, "ok", {}, roles=("readonly",))  # hidden: the role may not see it
        with pytest.raises(UnknownTool):
            await call(runtime, "no-such-tool", {})
        assert not (await call(runtime, "quick", {})).is_error  # type: ignore[union-attr]
        assert (await call(runtime, "quick", {})).is_error  # type: ignore[union-attr]
        assert (await call(runtime, "costly", {})).is_error  # type: ignore[union-attr]
        from tools.errors import InvalidArguments

        with pytest.raises(InvalidArguments):
            await call(runtime, "ok", {"n": "1", "password": "hunter2"})
        with pytest.raises(Upstream503):
            await call(runtime, "upstream", {})
        assert (await call(runtime, "refuses", {})).is_error  # type: ignore[union-attr]
        from tools.errors import ToolCrashed

        with pytest.raises(ToolCrashed):
            await call(runtime, "crashes", {})
        with pytest.raises(ToolTimeout):
            await call(runtime, "hangs", {})
        started = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, runtime, "hangs", {})
            await started.wait()
            tg.cancel_scope.cancel()
        assert not (await call(runtime, "generated", {})).is_error  # type: ignore[union-attr]

    bodies = records(tmp_path / "audit.db")
    by_call: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_call.setdefault(body["call_id"], []).append(body)
    pairs = list(by_call.values())
    assert all([r["kind"] for r in pair] == ["intent", "outcome"] for pair in pairs)
    statuses = [(pair[1]["tool"], pair[1]["status"]) for pair in pairs]
    assert statuses == [
        ("ok", "allowed"),
        ("ok", "denied"),
        ("ok", "denied"),
        ("no-such-tool", "unknown_tool"),
        ("quick", "allowed"),
        ("quick", "rate_limited"),
        ("costly", "quota_exceeded"),
        ("ok", "invalid"),
        ("upstream", "upstream_error"),
        ("refuses", "tool_error"),
        ("crashes", "tool_error"),
        ("hangs", "timeout"),
        ("hangs", "cancelled"),
        ("generated", "allowed"),
    ]
    denied = pairs[1][1]
    assert denied["rule"] == "need-reason"
    assert pairs[6][1]["limit"] == "daily"
    assert pairs[5][1]["limit"] == "quick-once"
    # The password never reaches the audit store, even on an invalid call.
    assert pairs[7][0]["arguments"] == {"n": "1", "password": "[redacted]"}
    assert "hunter2" not in (tmp_path / "audit.db").read_bytes().decode("latin-1")
    # Only calls whose executor ran are charged.
    charged = {pair[1]["tool"]: pair[1]["cost"] for pair in pairs if pair[1]["cost"]}
    assert charged == {"ok": 1, "quick": 1, "upstream": 1, "refuses": 1, "crashes": 1, "hangs": 1, "generated": 1}


async def test_the_intent_is_committed_before_the_executor_runs(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    async def look(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        conn = sqlite3.connect(tmp_path / "audit.db")  # another connection: sees only committed rows
        seen.append([kind for (kind,) in conn.execute("SELECT kind FROM audit_records ORDER BY seq")])
        conn.close()
        return ToolResult.text("looked")

    runtime = make_runtime(tmp_path, [_tool("look", look)])
    async with runtime.running():
        await call(runtime, "look", {})
        after = [r["kind"] for r in records(tmp_path / "audit.db")]
    assert seen == [["intent"]]
    assert after == ["intent", "outcome"]


def _refuse_writes(db: Path, kind: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            f"CREATE TRIGGER refuse_{kind} BEFORE INSERT ON audit_records WHEN NEW.kind = '{kind}'"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    conn.close()


async def test_an_unwritable_intent_refuses_the_call_before_the_executor_runs(tmp_path: Path) -> None:
    ran: list[str] = []

    async def mutate(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        ran.append("ran")
        return ToolResult.text("mutated")

    runtime = make_runtime(tmp_path, [_tool("mutate", mutate)], quotas={"daily": 10})
    async with runtime.running():
        _refuse_writes(tmp_path / "audit.db", "intent")
        with pytest.raises(LedgerUnavailable, match="audit store is unavailable"):
            await call(runtime, "mutate", {})
        assert await runtime.ledger.quota.used("alice") == (0, 0)  # type: ignore[union-attr]
    assert ran == []


async def test_an_unwritable_outcome_withholds_the_result(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("ok", _ok)])
    async with runtime.running():
        _refuse_writes(tmp_path / "audit.db", "outcome")
        with pytest.raises(LedgerUnavailable):
            await call(runtime, "ok", {})


async def test_hostile_argument_values_are_bounded_and_stored_as_data(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"s": {"type": "string"}, "items": {"type": "array"}}}
    tool = Tool(name="take", description="t", input_schema=schema, executor=_ok, source="test")
    runtime = make_runtime(tmp_path, [tool], audit={"max_string_chars": 64})
    hostile = "A" * 100_000 + "\r\nX-Injected: 1\x1b[31m\u202e\ud800"
    async with runtime.running():
        await call(runtime, "take", {"s": hostile, "items": list(range(1000))})
    intent = records(tmp_path / "audit.db")[0]
    stored = intent["arguments"]["s"]
    assert stored.startswith("A" * 64)
    assert f"{len(hostile)} chars, sha256:" in stored
    assert len(stored) < 200
    assert len(intent["arguments"]["items"]) == 65


async def test_a_call_cancelled_while_its_intent_commits_gets_one_intent_and_one_outcome(tmp_path: Path) -> None:
    import threading

    ran: list[str] = []

    async def mutate(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        ran.append("ran")
        return ToolResult.text("mutated")

    runtime = make_runtime(tmp_path, [_tool("mutate", mutate)])
    gate, entered = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection, _batch: Any) -> None:
        entered.set()
        gate.wait(10)

    async with runtime.running():
        writer = runtime.ledger.writer
        assert writer is not None
        async with anyio.create_task_group() as outer:
            # The held batch runs off the event loop (an idle writer would commit it inline, on
            # whichever thread submits it), so the call below must queue behind it.
            outer.start_soon(partial(anyio.to_thread.run_sync, writer.run_sync, hold))
            await anyio.to_thread.run_sync(entered.wait, 10)
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, runtime, "mutate", {})
                while writer._queue.qsize() == 0:  # the call is now waiting for its intent's commit
                    await anyio.sleep(0)
                tg.cancel_scope.cancel()
                gate.set()  # the cancelled call's outcome write waits behind the held batch
        await call(runtime, "mutate", {"n": 2})
    bodies = records(tmp_path / "audit.db")
    first = [b for b in bodies if b["call_id"] == bodies[0]["call_id"]]
    assert [(b["kind"], b["status"]) for b in first] == [("intent", None), ("outcome", "cancelled")]
    assert ran == ["ran"]  # only the second call ran
    conn = sqlite3.connect(tmp_path / "audit.db")
    assert conn.execute("SELECT count(*) FROM audit_open_calls").fetchone() == (0,)
    conn.close()


async def test_the_outcome_records_how_many_bytes_the_result_carried(tmp_path: Path) -> None:
    body = '{"items": [' + ", ".join(f'{{"id": {n}, "name": "item {n}"}}' for n in range(50)) + '], "note": "é"}'
    structured = json.loads(body)

    async def as_json(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        # Structured content and the same JSON as text: the text's size stands for both.
        return ToolResult(content=[types.TextContent(type="text", text=body)], structured=structured)

    async def with_summary(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        return ToolResult(content=[types.TextContent(type="text", text="50 items")], structured=structured)

    runtime = make_runtime(tmp_path, [_tool("as_json", as_json), _tool("with_summary", with_summary)])
    async with runtime.running():
        await call(runtime, "as_json")
        await call(runtime, "with_summary")
    outcomes = [r for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"]
    encoded = len(body.encode("utf-8"))
    assert [r["result_bytes"] for r in outcomes] == [2 * encoded, len("50 items") + len(repr(structured))]
