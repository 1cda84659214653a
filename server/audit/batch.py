"""One group-commit transaction: run queued operations under savepoints, commit, hand results back.

Shared by the two ways a batch gets committed (`server.audit.writer`): inline on the caller's
thread when the writer is idle, or on the writer thread when work is already queued.
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

__all__ = ["Batch", "Job", "LedgerUnavailable", "Op", "deliver", "fail_all", "run_jobs"]

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
    hooks run once the data is durable, while the connection is still held, so they must be
    cheap (slow side effects belong to the writer thread's housekeeping).
    """

    cache: dict[str, Any] = field(default_factory=dict)
    before_commit: dict[str, Callable[[sqlite3.Connection, Batch], None]] = field(default_factory=dict)
    after_commit: dict[str, Callable[[], None]] = field(default_factory=dict)


Op = Callable[[sqlite3.Connection, Batch], T]


@dataclass(slots=True)
class Job(Generic[T]):
    """One submitted operation and where its result goes.

    Inline jobs have no future, loop or event: their caller reads `result` and `error` directly.
    """

    op: Op[T]
    early: bool
    future: asyncio.Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    event: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None


def run_jobs(
    conn: sqlite3.Connection, batch: Batch, jobs: list[Job[Any]], pending: list[Job[Any]], *, hand_back: bool
) -> None:
    """Run `jobs` in the open transaction; the ones that wait for the commit go to `pending`.

    With `hand_back`, early and failed jobs are delivered at once instead (their callers do not
    wait for the commit; see `GroupCommitWriter.run`).
    """
    early: list[Job[Any]] = []
    for job in jobs:
        _run_saved(conn, batch, job)
        (early if hand_back and (job.early or job.error is not None) else pending).append(job)
    if early:
        deliver(early)


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
