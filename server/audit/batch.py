"""One group-commit transaction: run operations under savepoints, commit, hand the results back.

Two ways to commit a batch, both used by `server.audit.writer`: `commit_here`, on the caller's
thread when the writer is idle (nothing to wait for, nobody to wake), and `commit_queued`, on the
writer thread, which lets writes queued meanwhile join the transaction and wakes every caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from tools.errors import ToolFailure

__all__ = ["Batch", "Job", "LedgerUnavailable", "Op", "Tally", "commit_here", "commit_queued", "deliver"]

T = TypeVar("T")
log = structlog.get_logger("toolkiln.ledger")


class LedgerUnavailable(ToolFailure):
    """The durable store could not be written, so the call is refused (fail closed)."""

    audit_status = "unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(f"The call was refused because the audit store is unavailable ({detail})")
        self.detail = detail


@dataclass(slots=True)
class Batch:
    """Per-transaction scratch space shared by the operations of one batch.

    `cache` lets operations reuse what an earlier one read under the same write lock (the audit
    chain head); `before_commit` hooks run once, last, inside the transaction; `after_commit`
    hooks run once the data is durable, on whichever thread committed, so they must be cheap
    (slow side effects belong to the writer thread's housekeeping).
    """

    cache: dict[str, Any] = field(default_factory=dict)
    before_commit: dict[str, Callable[[sqlite3.Connection, Batch], None]] = field(default_factory=dict)
    after_commit: dict[str, Callable[[], None]] = field(default_factory=dict)


Op = Callable[[sqlite3.Connection, Batch], T]


@dataclass(slots=True)
class Job(Generic[T]):
    """One submitted operation and where its result goes.

    A job committed inline has no future, loop or event: its caller reads `result` and `error`.
    """

    op: Op[T]
    early: bool
    future: asyncio.Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    event: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class Tally:
    """What has been committed, for the writer's housekeeping and for benchmarks."""

    batches: int = 0
    operations: int = 0
    inline_batches: int = 0
    since_checkpoint: int = 0


def commit_here(conn: sqlite3.Connection, jobs: list[Job[Any]], tally: Tally) -> bool:
    """Commit `jobs` in one transaction on this thread; False if SQLite's write lock is taken.

    The connection's busy timeout must be off: a caller on the event loop never waits for another
    process. When False is returned nothing ran and the jobs are untouched.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return False
    batch = Batch()
    try:
        if len(jobs) == 1:
            # Alone in its transaction, a job needs no savepoint (two statements fewer in the
            # common case): if it fails, the whole transaction is rolled back instead.
            job = jobs[0]
            try:
                job.result = job.op(conn, batch)
            except Exception as exc:
                job.error = exc
                _rollback(conn)
                return True
        else:
            for job in jobs:
                _run_saved(conn, batch, job)
        _commit(conn, batch)
    except Exception as exc:  # a failed commit (or hook): nothing of the batch is durable
        _rollback(conn)
        fail_all(jobs, exc)
        return True
    tally.inline_batches += 1
    _committed(batch, len(jobs), tally)
    return True


def commit_queued(
    conn: sqlite3.Connection,
    jobs: list[Job[Any]],
    tally: Tally,
    *,
    more: Callable[[int], list[Job[Any]]],
    max_batch: int,
    settle: Callable[[int], None],
) -> None:
    """Commit `jobs`, and whatever `more` hands over meanwhile, in one transaction; wake every caller.

    Early and failed jobs are handed back as soon as they have run; the rest after the commit.
    `settle(n)` is told how many jobs the batch took once it is over, before anyone is woken.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        settle(len(jobs))
        fail_all(jobs, exc)
        return
    batch = Batch()
    pending: list[Job[Any]] = []
    try:
        done = 0
        while done < len(jobs):
            early: list[Job[Any]] = []
            for job in jobs[done:]:
                _run_saved(conn, batch, job)
                (early if job.early or job.error is not None else pending).append(job)
            done = len(jobs)
            if early:
                deliver(early)
            # Whatever queued up meanwhile joins this transaction rather than waiting for it.
            jobs.extend(more(max_batch - len(jobs)))
        _commit(conn, batch)
    except Exception as exc:  # a failed commit (or hook) fails every caller still waiting
        _rollback(conn)
        settle(len(jobs))
        fail_all(pending, exc)
        return
    _committed(batch, len(jobs), tally)
    settle(len(jobs))
    deliver(pending)


def _run_saved(conn: sqlite3.Connection, batch: Batch, job: Job[Any]) -> None:
    conn.execute("SAVEPOINT op")
    saved = dict(batch.cache)
    try:
        job.result = job.op(conn, batch)
    except Exception as exc:
        conn.execute("ROLLBACK TO op")
        # What the op cached (a chain head it appended) was rolled back with it.
        batch.cache.clear()
        batch.cache.update(saved)
        job.error = exc
    conn.execute("RELEASE op")


def _commit(conn: sqlite3.Connection, batch: Batch) -> None:
    for hook in batch.before_commit.values():
        hook(conn, batch)
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def _committed(batch: Batch, operations: int, tally: Tally) -> None:
    tally.batches += 1
    tally.operations += operations
    tally.since_checkpoint += 1
    for after in batch.after_commit.values():
        try:
            after()
        except Exception:  # the data is committed; a failing side effect is only logged
            log.exception("ledger_after_commit_failed")


def fail_all(jobs: list[Job[Any]], exc: Exception) -> None:
    log.error("ledger_batch_failed", error=str(exc)[:200], operations=len(jobs))
    failure = LedgerUnavailable(type(exc).__name__ + ": " + str(exc)[:120])
    for job in jobs:
        job.error = failure
        job.result = None
    deliver(jobs)


def deliver(jobs: list[Job[Any]]) -> None:
    """Wake whoever waits for `jobs`: threads by event, event loops once per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Job[Any]]] = {}
    for job in jobs:
        if job.event is not None:
            job.event.set()
        elif job.loop is not None:
            by_loop.setdefault(job.loop, []).append(job)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, group)


def _resolve(group: list[Job[Any]]) -> None:
    for job in group:
        future = job.future
        if future is None or future.done():
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)
