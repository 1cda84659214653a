"""THREATS L1 (and L2 for SQLite): concurrent calls released together never over-admit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.audit.writer import GroupCommitWriter
from server.limits import BucketSpec, MemoryLimits, SqliteLimits
from server.limits.sqlite import LIMITS_SCHEMA
from tests.server.audit.support import Barrier, call, make_runtime
from tools.model import CallContext, Tool, ToolResult

pytestmark = pytest.mark.anyio

CALLS = 200
LIMIT = 10


async def _ok(_arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


TOOL = Tool(name="ping", description="ping", input_schema={"type": "object"}, executor=_ok, source="test")


def _limits(backend: str) -> dict[str, Any]:
    return {"backend": backend, "rules": [{"name": "per-caller-tool", "limit": LIMIT, "period_s": 3600}]}


async def _burst(runtime: Any, principal: str) -> list[ToolResult]:
    barrier = Barrier(CALLS)
    results: list[ToolResult] = []

    async def one() -> None:
        await barrier.wait()
        outcome = await call(runtime, "ping", principal=principal)
        assert isinstance(outcome, ToolResult)
        results.append(outcome)

    async with anyio.create_task_group() as tg:
        for _ in range(CALLS):
            tg.start_soon(one)
    return results


def _check_run(results: list[ToolResult]) -> None:
    admitted = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert len(admitted) == LIMIT
    assert len(refused) == CALLS - LIMIT
    for refusal in refused:
        assert refusal.structured is not None
        assert refusal.structured["error"] == "rate_limited"
        assert refusal.structured["retry_after_s"] >= 1


async def test_two_hundred_calls_released_together_admit_exactly_ten_in_memory_repeated_100_times(
    tmp_path: Path,
) -> None:
    # THREATS L1. Audit off so the repetition measures the limiter, not the disk.
    runtime = make_runtime(tmp_path, [TOOL], limits=_limits("memory"), audit={"enabled": False})
    for run in range(100):
        _check_run(await _burst(runtime, principal=f"caller-{run}"))


async def test_two_hundred_calls_released_together_admit_exactly_ten_with_sqlite_and_audit(tmp_path: Path) -> None:
    # THREATS L1 on the SQLite backend, through the whole audited pipeline.
    runtime = make_runtime(tmp_path, [TOOL], limits=_limits("sqlite"))
    async with runtime.running():
        for run in range(10):
            _check_run(await _burst(runtime, principal=f"caller-{run}"))


async def test_a_call_refused_by_one_bucket_consumes_nothing_from_the_others(tmp_path: Path) -> None:
    limits = MemoryLimits(clock=lambda: 1000.0)
    wide = BucketSpec(key="wide", rule="wide", scope="global", limit=100, period_s=60, burst=100)
    narrow = BucketSpec(key="narrow", rule="narrow", scope="principal", limit=1, period_s=60, burst=1)
    assert (await limits.acquire([wide, narrow])).allowed
    for _ in range(20):
        refused = await limits.acquire([wide, narrow])
        assert not refused.allowed
        assert refused.denied_by == narrow
    # The wide bucket was charged once only: 99 more fit.
    admitted = sum([(await limits.acquire([wide])).allowed for _ in range(100)])
    assert admitted == 99


def _schema(conn: sqlite3.Connection) -> None:
    for statement in LIMITS_SCHEMA:
        conn.execute(statement)


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from server.audit.writer import GroupCommitWriter
    from server.limits import BucketSpec, SqliteLimits
    from server.limits.sqlite import LIMITS_SCHEMA

    def setup(conn):
        for statement in LIMITS_SCHEMA:
            conn.execute(statement)

    async def main():
        writer = GroupCommitWriter(Path(sys.argv[1]), setup=[setup])
        limits = SqliteLimits(writer)
        spec = BucketSpec(key="shared", rule="shared", scope="global", limit=10, period_s=3600, burst=10)
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()  # the barrier: both processes start together
        results = await asyncio.gather(*(limits.acquire([spec]) for _ in range(100)))
        writer.close()
        print(sum(r.allowed for r in results))

    asyncio.run(main())
    """
)


def test_two_processes_sharing_sqlite_admit_exactly_ten_in_total(tmp_path: Path) -> None:
    # THREATS L2 (the SQLite part): the write transaction makes admission atomic across processes.
    db = tmp_path / "audit.db"
    writer = GroupCommitWriter(db, setup=[_schema])
    writer.start()
    writer.close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    admitted = [int(worker.communicate(timeout=30)[0].strip()) for worker in workers]
    assert sum(admitted) == LIMIT


async def test_sqlite_limits_survive_a_new_writer_on_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    spec = BucketSpec(key="k", rule="r", scope="global", limit=2, period_s=3600, burst=2)
    first = GroupCommitWriter(db, setup=[_schema])
    assert [(await SqliteLimits(first).acquire([spec])).allowed for _ in range(2)] == [True, True]
    first.close()
    second = GroupCommitWriter(db, setup=[_schema])
    refused = await SqliteLimits(second).acquire([spec])
    second.close()
    assert not refused.allowed
    assert refused.retry_after_s > 0
