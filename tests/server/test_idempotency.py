"""Idempotency keys: a repeat within the TTL returns the stored result without running again."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from server.app import build_server
from server.audit.writer import GroupCommitWriter
from server.idempotency import IDEMPOTENCY_SCHEMA, IdempotencyConflict, MemoryIdempotency, SqliteIdempotency
from server.limits.sqlite import LIMITS_SCHEMA
from tests.server.audit.support import Barrier, call, make_runtime, records, text_of
from tools.model import CallContext, Tool, ToolAnnotations, ToolResult

pytestmark = pytest.mark.anyio

SCHEMA = {
    "type": "object",
    "properties": {"item": {"type": "string"}, "idempotency_key": {"type": "string"}},
    "required": ["item"],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """Counts how often the executor really ran."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.calls = 0
        self.fail_first = fail_first

    async def __call__(self, arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        self.calls += 1
        await anyio.sleep(0)  # let concurrent duplicates interleave
        if self.fail_first and self.calls == 1:
            return ToolResult.text("upstream busy", is_error=True)
        return ToolResult(
            content=[types.TextContent(type="text", text=f"order {self.calls} for {arguments['item']}")],
            structured={"order": self.calls},
        )


def _tools(upstream: Upstream) -> list[Tool]:
    return [
        Tool(name="order", description="o", input_schema=SCHEMA, executor=upstream, source="test", cost=3),
        Tool(
            name="lookup",
            description="l",
            input_schema=SCHEMA,
            executor=upstream,
            source="test",
            annotations=ToolAnnotations(read_only=True),
        ),
    ]


async def test_a_repeat_with_the_same_key_returns_the_stored_result_without_running_or_charging_again(
    tmp_path: Path,
) -> None:
    upstream = Upstream()
    runtime = make_runtime(tmp_path, _tools(upstream), quotas={"daily": 100})
    arguments = {"item": "book", "idempotency_key": "k-1"}
    async with runtime.running():
        first = await call(runtime, "order", arguments)
        second = await call(runtime, "order", arguments)
        used = await runtime.ledger.quota.used("alice")  # type: ignore[union-attr]
    assert upstream.calls == 1
    assert isinstance(first, ToolResult)
    assert isinstance(second, ToolResult)
    assert (second.content, second.structured) == (first.content, first.structured)
    assert used == (3_000_000, 3_000_000)
    outcomes = [r for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"]
    assert [(o["idempotency"], o["cost"]) for o in outcomes] == [("claimed", 3), ("replayed", 0)]


async def test_a_key_in_meta_works_through_a_real_client(tmp_path: Path) -> None:
    upstream = Upstream()
    runtime = make_runtime(tmp_path, _tools(upstream))
    meta: Any = {"io.toolkiln/idempotency-key": "meta-key-7"}
    async with runtime.running(), Client(build_server(runtime)) as client:
        first = await client.call_tool("order", {"item": "pen"}, meta=meta)
        second = await client.call_tool("order", {"item": "pen"}, meta=meta)
        third = await client.call_tool("order", {"item": "pen"})  # no key: runs again
    assert upstream.calls == 2
    assert second.content == first.content
    assert third.content != first.content


async def test_the_same_key_with_different_arguments_is_refused(tmp_path: Path) -> None:
    upstream = Upstream()
    runtime = make_runtime(tmp_path, _tools(upstream))
    async with runtime.running():
        await call(runtime, "order", {"item": "book", "idempotency_key": "k"})
        with pytest.raises(IdempotencyConflict, match="different arguments"):
            await call(runtime, "order", {"item": "lamp", "idempotency_key": "k"})
    assert upstream.calls == 1


async def test_keys_are_scoped_to_the_caller_so_nobody_replays_another_callers_result(tmp_path: Path) -> None:
    upstream = Upstream()
    runtime = make_runtime(tmp_path, _tools(upstream))
    arguments = {"item": "book", "idempotency_key": "shared"}
    async with runtime.running():
        mine = await call(runtime, "order", arguments, principal="alice")
        theirs = await call(runtime, "order", arguments, principal="bob")
    assert upstream.calls == 2
    assert text_of(mine) != text_of(theirs)


async def test_read_only_tools_ignore_keys(tmp_path: Path) -> None:
    upstream = Upstream()
    runtime = make_runtime(tmp_path, _tools(upstream))
    async with runtime.running():
        for _ in range(3):
            await call(runtime, "lookup", {"item": "x", "idempotency_key": "k"})
    assert upstream.calls == 3


async def test_a_failed_call_releases_its_key_so_a_retry_runs(tmp_path: Path) -> None:
    upstream = Upstream(fail_first=True)
    runtime = make_runtime(tmp_path, _tools(upstream))
    arguments = {"item": "book", "idempotency_key": "retry-me"}
    async with runtime.running():
        failed = await call(runtime, "order", arguments)
        retried = await call(runtime, "order", arguments)
        replayed = await call(runtime, "order", arguments)
    assert isinstance(failed, ToolResult)
    assert failed.is_error
    assert upstream.calls == 2
    assert text_of(replayed) == text_of(retried)


async def test_duplicates_released_together_run_the_upstream_once(tmp_path: Path) -> None:
    upstream = Upstream()
    runtime = make_runtime(tmp_path, _tools(upstream))
    barrier = Barrier(20)
    results: list[ToolResult] = []

    async def one() -> None:
        await barrier.wait()
        result = await call(runtime, "order", {"item": "book", "idempotency_key": "burst"})
        assert isinstance(result, ToolResult)
        results.append(result)

    async with runtime.running():
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        settled = await call(runtime, "order", {"item": "book", "idempotency_key": "burst"})
    assert upstream.calls == 1
    succeeded = [r for r in results if not r.is_error]
    busy = [r for r in results if r.is_error]
    assert all(r.structured == {"order": 1} for r in succeeded)
    assert all(r.structured == {"error": "idempotency_in_progress", "retry_after_s": 1} for r in busy)
    assert len(succeeded) + len(busy) == 20
    assert isinstance(settled, ToolResult)
    assert settled.structured == {"order": 1}


def _schema(conn: Any) -> None:
    for statement in (*LIMITS_SCHEMA, *IDEMPOTENCY_SCHEMA):
        conn.execute(statement)
    conn.execute("CREATE TABLE IF NOT EXISTS audit_records (call_id TEXT, kind TEXT)")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_stored_result_expires_after_the_ttl(kind: str, tmp_path: Path) -> None:
    now = [1000.0]
    writer = None
    if kind == "sqlite":
        writer = GroupCommitWriter(tmp_path / "audit.db", setup=[_schema])
        store: Any = SqliteIdempotency(writer, clock=lambda: now[0])
    else:
        store = MemoryIdempotency(clock=lambda: now[0])
    try:
        assert (await store.claim("scope", "fp", "call-1", 60)).kind == "claimed"
        store.complete("scope", "call-1", '{"content":[]}', 60)
        replay = await store.claim("scope", "fp", "call-2", 60)
        assert (replay.kind, replay.result) == ("replay", '{"content":[]}')
        now[0] += 61
        assert (await store.claim("scope", "fp", "call-3", 60)).kind == "claimed"
    finally:
        if writer is not None:
            writer.close()
