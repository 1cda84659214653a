"""How the ledger writer commits: inline when one call is alone, batched when calls overlap.

The promises do not change with the path (THREATS K4, U3 and the intent/outcome order are
tested elsewhere); these tests pin which path is taken, that an inline commit never stalls the
event loop on another process's lock, and that the WAL stays bounded without SQLite's automatic
checkpoint.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.audit.ledger import LedgerPaths
from server.audit.query import SearchFilter, search_records
from server.audit.verify import verify_chain
from server.audit.writer import Batch, GroupCommitWriter, LedgerUnavailable
from tests.server.audit.support import Barrier, call, make_runtime, records
from tools.model import CallContext, Tool, ToolResult

pytestmark = pytest.mark.anyio


def _tool(name: str, executor: Any) -> Tool:
    return Tool(name=name, description=name, input_schema={"type": "object"}, executor=executor, source="test")


async def _ok(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


def _notes_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (n INTEGER PRIMARY KEY, text TEXT NOT NULL)")


def _note(text: str) -> Any:
    def op(conn: sqlite3.Connection, _batch: Batch) -> int:
        return int(conn.execute("INSERT INTO notes (text) VALUES (?) RETURNING n", (text,)).fetchone()[0])

    return op


def _wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_calls_one_at_a_time_commit_inline_without_a_hand_over_to_the_writer_thread(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("ok", _ok)])
    async with runtime.running():
        writer = runtime.ledger.writer
        assert writer is not None
        before = (writer.tally.batches, writer.tally.inline_batches)
        for _ in range(10):
            await call(runtime, "ok")
        after = (writer.tally.batches, writer.tally.inline_batches)
    # Two transactions per call (the intent, then the outcome), both on the caller's thread.
    assert (after[0] - before[0], after[1] - before[1]) == (20, 20)
    assert [r["kind"] for r in records(tmp_path / "audit.db")] == ["intent", "outcome"] * 10


async def test_overlapping_calls_share_group_commits_on_the_writer_thread(tmp_path: Path) -> None:
    barrier = Barrier(50)

    async def meet(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        await barrier.wait()
        return ToolResult.text("met")

    runtime = make_runtime(tmp_path, [_tool("meet", meet)])
    async with runtime.running():
        writer = runtime.ledger.writer
        assert writer is not None
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(call, runtime, "meet")
        tally = writer.tally
    assert tally.batches > tally.inline_batches, "the writer thread committed batches"
    assert tally.operations > tally.batches, "writes of concurrent calls shared transactions"
    paths = LedgerPaths.from_settings(runtime.settings)
    report = verify_chain(paths.db, paths.key, paths.head)
    assert report.ok, report.summary()
    assert report.records == 100


async def test_with_synchronous_full_every_batch_goes_through_the_writer_thread(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("ok", _ok)], audit={"synchronous": "full"})
    async with runtime.running():
        writer = runtime.ledger.writer
        assert writer is not None
        for _ in range(3):
            await call(runtime, "ok")
        assert writer.tally.inline_batches == 0
        assert writer.tally.operations >= 6


async def test_a_posted_write_rides_in_the_same_inline_transaction_as_the_next_awaited_one(tmp_path: Path) -> None:
    writer = GroupCommitWriter(tmp_path / "ledger.db", setup=[_notes_table])
    try:
        await writer.run(_note("warm-up"))
        batches = writer.tally.batches
        writer.post(_note("posted first"))
        await writer.run(_note("awaited second"))
        assert writer.tally.batches == batches + 1
        assert writer.tally.operations == 3
    finally:
        writer.close()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    try:
        texts = [text for (text,) in conn.execute("SELECT text FROM notes ORDER BY n")]
    finally:
        conn.close()
    assert texts == ["warm-up", "posted first", "awaited second"]


async def test_a_write_lock_held_by_another_process_never_stalls_the_event_loop_and_fails_closed(
    tmp_path: Path,
) -> None:
    # THREATS K4: the inline path does not wait for SQLite's lock; the writer thread waits, for at
    # most busy_timeout, and then the write fails closed.
    db = tmp_path / "ledger.db"
    busy_timeout_s = 1.5
    writer = GroupCommitWriter(db, setup=[_notes_table], busy_timeout_ms=int(busy_timeout_s * 1000))
    writer.start()
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        outcome: list[BaseException] = []
        longest_stall = 0.0

        async def write() -> None:
            try:
                await writer.run(_note("blocked"))
            except LedgerUnavailable as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            last = time.monotonic()
            while not outcome:  # the loop keeps turning while the write waits in the thread
                await anyio.sleep(0)
                now = time.monotonic()
                longest_stall, last = max(longest_stall, now - last), now
        assert longest_stall < busy_timeout_s / 2
        assert isinstance(outcome[0], LedgerUnavailable)
        other.execute("ROLLBACK")
        assert await writer.run(_note("after release")) == 1
    finally:
        other.close()
        writer.close()


async def test_a_write_waiting_for_another_process_lands_once_the_lock_is_released(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("ok", _ok)])
    async with runtime.running():
        writer = runtime.ledger.writer
        assert writer is not None
        other = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, runtime, "ok")
                while not writer._queued:
                    await anyio.sleep(0)  # until the intent is handed to the writer thread, which waits
                other.execute("ROLLBACK")
        finally:
            other.close()
    assert [(r["kind"], r["status"]) for r in records(tmp_path / "audit.db")] == [
        ("intent", None),
        ("outcome", "allowed"),
    ]


@pytest.mark.parametrize("pause", [pytest.param(True, id="quiet-moments"), pytest.param(False, id="never-quiet")])
async def test_the_wal_stays_bounded_under_a_steady_stream_of_inline_commits(pause: bool, tmp_path: Path) -> None:
    # The connection never checkpoints on commit; the writer thread's housekeeping must, or the
    # WAL would grow by every commit for as long as the server runs. Without quiet moments its
    # checkpoints race the commits and never finish, so it must also make SQLite start over.
    db = tmp_path / "ledger.db"
    ticked = threading.Event()
    writer = GroupCommitWriter(
        db, setup=[_notes_table], housekeeping=ticked.set, housekeeping_s=0.005, checkpoint_pages=25
    )
    largest = 0
    try:
        for round_no in range(20):
            for n in range(250):
                await writer.run(_note(f"{round_no}-{n}"))
            if pause:
                # Two housekeeping passes: the checkpoint due after the first has finished by the second.
                for _ in range(2):
                    ticked.clear()
                    assert await anyio.to_thread.run_sync(ticked.wait, 10)
            largest = max(largest, _wal_bytes(db))
        assert writer.tally.operations == 5000
    finally:
        writer.close()
    # 5,000 commits of at least one 4 KiB page each would make a WAL of more than 20 MB; bounded,
    # it holds what is committed between two housekeeping passes plus four checkpoints' worth.
    assert 0 < largest < 8 * 1024 * 1024


async def test_searching_by_call_id_finds_the_intent_and_the_outcome_of_that_call_only(tmp_path: Path) -> None:
    # The call_id index holds intents only (an outcome commit writes one page fewer); a search by
    # call id still returns every record of the call.
    runtime = make_runtime(tmp_path, [_tool("ok", _ok)])
    async with runtime.running():
        for _ in range(5):
            await call(runtime, "ok")
    db = tmp_path / "audit.db"
    third = records(db)[4]["call_id"]
    found = search_records(db, SearchFilter(call_id=third))
    assert [(r["kind"], r["call_id"]) for r in found] == [("intent", third), ("outcome", third)]
    assert search_records(db, SearchFilter(call_id="no-such-call")) == []
    conn = sqlite3.connect(db)
    try:
        plan = " ".join(str(row) for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM audit_records WHERE call_id = ? AND kind = 'intent'", (third,)
        ))  # fmt: skip
    finally:
        conn.close()
    assert "audit_records_call" in plan


async def test_a_finished_call_whose_open_row_outlived_its_dead_process_gets_no_second_outcome(tmp_path: Path) -> None:
    # An open-call row is deleted a little after its outcome commits; a process killed in between
    # leaves the row behind. Reconciliation must only delete it: the call has its outcome.
    runtime = make_runtime(tmp_path, [_tool("ok", _ok)])
    async with runtime.running():
        await call(runtime, "ok")
    db = tmp_path / "audit.db"
    intent, outcome = records(db)
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(
                "INSERT INTO audit_open_calls (call_id, owner, intent_seq, principal, tool, source)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (intent["call_id"], "999999999:0", intent["seq"], intent["principal"], intent["tool"], "test"),
            )
    finally:
        conn.close()
    restarted = make_runtime(tmp_path, [_tool("ok", _ok)])
    async with restarted.running():
        pass
    assert restarted.ledger.reconciled == 0
    assert [(r["kind"], r["status"]) for r in records(db)] == [("intent", None), ("outcome", outcome["status"])]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM audit_open_calls").fetchone() == (0,)
    finally:
        conn.close()
