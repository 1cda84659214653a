"""Group commit: one writer thread per process batches many small writes into one SQLite transaction.

Audit records, quota reservations, idempotency claims and shared rate-limit buckets are all tiny
writes that must be committed before a call proceeds. Committing each on its own costs a
transaction (and, with `synchronous=FULL`, an fsync) per write; here every write that arrives
while a transaction is running joins the next one, and each caller awaits the commit of the batch
that holds its write. Under load a batch holds dozens of writes, so throughput scales with
concurrency instead of with commit latency.

Each operation is a plain function run in the writer thread inside the batch's transaction,
wrapped in a savepoint so one failing operation rolls back only itself. Operations run in the
order they were submitted, so an operation awaited after earlier fire-and-forget ones (`post`)
is committed together with, or after, all of them. Several processes may each run a writer on
the same file: `BEGIN IMMEDIATE` takes SQLite's write lock for the whole batch, so their batches
interleave but never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import structlog

from tools.errors import ToolFailure

__all__ = ["Batch", "GroupCommitWriter", "LedgerUnavailable", "Op"]

T = TypeVar("T")
log = structlog.get_logger("toolkiln.ledger")

Synchronous = Literal["normal", "full"]


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
    hooks run once the data is durable.
    """

    cache: dict[str, Any] = field(default_factory=dict)
    before_commit: dict[str, Callable[[sqlite3.Connection, Batch], None]] = field(default_factory=dict)
    after_commit: dict[str, Callable[[], None]] = field(default_factory=dict)


Op = Callable[[sqlite3.Connection, Batch], T]


@dataclass(slots=True)
class _Job(Generic[T]):
    op: Op[T]
    early: bool
    future: asyncio.Future[T] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    event: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None


_STOP = object()


class GroupCommitWriter:
    """The one writer of a SQLite file in this process.

    `setup` functions run once on the fresh connection (schema, reconciliation); `idle` runs
    in the writer thread whenever the queue has been empty for `idle_s` (deferred housekeeping).
    """

    def __init__(
        self,
        path: Path,
        *,
        setup: Sequence[Callable[[sqlite3.Connection], None]] = (),
        synchronous: Synchronous = "normal",
        max_batch: int = 512,
        busy_timeout_ms: int = 5000,
        idle: Callable[[], None] | None = None,
        idle_s: float = 0.05,
        periodic: Op[Any] | None = None,
        periodic_s: float = 30.0,
    ) -> None:
        self.path = path
        self._setup = tuple(setup)
        self._synchronous = synchronous.upper()
        self._max_batch = max_batch
        self._busy_timeout_ms = busy_timeout_ms
        self._idle = idle
        self._idle_s = idle_s
        self._periodic = periodic
        self._periodic_s = periodic_s
        self._next_periodic = time.monotonic() + periodic_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._posted: list[_Job[Any]] = []
        self._posted_lock = threading.Lock()
        self.batches = 0
        self.operations = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database in the writer thread and run the setup functions.

        Raises:
            sqlite3.Error or OSError: the file cannot be opened or set up; nothing is started.
        """
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            thread = threading.Thread(target=self._main, args=(ready,), name="toolkiln-ledger", daemon=True)
            thread.start()
            ready.wait()
            if self._failure is not None:
                thread.join()
                failure, self._failure = self._failure, None
                raise failure
            self._thread = thread

    @property
    def started(self) -> bool:
        return self._thread is not None

    def close(self) -> None:
        """Commit whatever is queued, then stop the thread and close the connection."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._flush_posted()
        self._queue.put(_STOP)
        thread.join()

    # -- submitting ------------------------------------------------------------------------

    async def run(self, op: Op[T], *, early: bool = False) -> T:
        """Run `op` in the next batch and return its result once the batch is committed.

        With `early=True` the result is handed back as soon as `op` has run, before the commit:
        for decisions (admit or not) whose durability is guaranteed by a later awaited write of
        the same call, which the FIFO order commits together with or after this one.

        Raises:
            LedgerUnavailable: the batch could not be committed.
            Exception: whatever `op` raised (its own writes are rolled back).
        """
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._submit(_Job(op=op, early=early, future=future, loop=loop))
        return await future

    def post(self, op: Op[Any]) -> None:
        """Queue `op` without waiting; a later awaited operation's commit covers it.

        Posted operations ride along with the next `run` from this process (one hand-over to the
        writer thread instead of two); if none follows in this event-loop turn, they go alone.
        """
        self._ensure_started()
        with self._posted_lock:
            self._posted.append(_Job(op=op, early=False))
            first = len(self._posted) == 1
        if first:
            try:
                asyncio.get_running_loop().call_soon(self._flush_posted)
            except RuntimeError:
                self._flush_posted()

    def _flush_posted(self) -> None:
        with self._posted_lock:
            posted, self._posted = self._posted, []
        if posted:
            self._queue.put(posted)

    def _submit(self, job: _Job[Any]) -> None:
        with self._posted_lock:
            posted, self._posted = self._posted, []
        self._queue.put([*posted, job] if posted else job)

    def run_sync(self, op: Op[T]) -> T:
        """`run` for callers without an event loop (the CLI, process-level tests)."""
        self._ensure_started()
        job: _Job[T] = _Job(op=op, early=False, event=threading.Event())
        self._submit(job)
        assert job.event is not None
        job.event.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _ensure_started(self) -> None:
        if self._thread is None:
            self.start()

    # -- the writer thread -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        for setup in self._setup:
            setup(conn)
        return conn

    def _main(self, ready: threading.Event) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start(), which re-raises it
            self._failure = exc
            ready.set()
            return
        ready.set()
        try:
            self._loop(conn)
        finally:
            conn.close()

    def _loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                self._run_idle()
                self._run_periodic(conn)
                continue
            jobs: list[_Job[Any]] = []
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, list):
                    jobs.extend(item)
                else:
                    jobs.append(item)
                if stopping or len(jobs) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if jobs:
                self._commit_batch(conn, jobs)
            self._run_periodic(conn)
        self._run_idle()

    def _run_periodic(self, conn: sqlite3.Connection) -> None:
        # Checked after every batch and every idle wake-up, so it runs under load as well.
        if self._periodic is None or time.monotonic() < self._next_periodic:
            return
        self._next_periodic = time.monotonic() + self._periodic_s
        job: _Job[Any] = _Job(op=self._periodic, early=False)
        self._commit_batch(conn, [job])
        if job.error is not None:
            log.error("ledger_periodic_failed", error=str(job.error)[:200])

    def _run_idle(self) -> None:
        if self._idle is None:
            return
        try:
            self._idle()
        except Exception:  # housekeeping never stops the writer
            log.exception("ledger_idle_failed")

    def _commit_batch(self, conn: sqlite3.Connection, jobs: list[_Job[Any]]) -> None:
        batch = Batch()
        pending: list[_Job[Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail_all(jobs, exc)
            return
        try:
            done = 0
            while done < len(jobs):
                early: list[_Job[Any]] = []
                for job in jobs[done:]:
                    self._run_job(conn, batch, job)
                    (early if job.early or job.error is not None else pending).append(job)
                done = len(jobs)
                if early:
                    _deliver(early)
                # Whatever queued up meanwhile joins this transaction rather than waiting for it.
                jobs.extend(self._drain(self._max_batch - len(jobs)))
            for hook in batch.before_commit.values():
                hook(conn, batch)
            conn.execute("COMMIT")
        except Exception as exc:  # a failed commit (or hook) fails every caller still waiting
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._fail_all(pending, exc)
            return
        self.batches += 1
        self.operations += len(jobs)
        for after in batch.after_commit.values():
            try:
                after()
            except Exception:  # the data is committed; a failing side effect is only logged
                log.exception("ledger_after_commit_failed")
        _deliver(pending)

    def _run_job(self, conn: sqlite3.Connection, batch: Batch, job: _Job[Any]) -> None:
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

    def _drain(self, room: int) -> list[_Job[Any]]:
        taken: list[_Job[Any]] = []
        while len(taken) < room:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # nothing is queued after it; the main loop stops next
                break
            if isinstance(item, list):
                taken.extend(item)
            else:
                taken.append(item)
        return taken

    def _fail_all(self, jobs: list[_Job[Any]], exc: Exception) -> None:
        log.error("ledger_batch_failed", error=str(exc)[:200], operations=len(jobs))
        failure = LedgerUnavailable(type(exc).__name__ + ": " + str(exc)[:120])
        for job in jobs:
            job.error = failure
            job.result = None
        _deliver(jobs)


def _deliver(jobs: list[_Job[Any]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
    for job in jobs:
        if job.event is not None:
            job.event.set()
        elif job.loop is not None:
            by_loop.setdefault(job.loop, []).append(job)
    # One wake-up per event loop per batch instead of one per operation.
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
            loop.call_soon_threadsafe(_resolve, group)


def _resolve(group: list[_Job[Any]]) -> None:
    for job in group:
        future = job.future
        if future is None or future.done():
            continue
        if job.error is not None:
            future.set_exception(job.error)
        else:
            future.set_result(job.result)


def now_s() -> float:
    """Wall-clock seconds; every process on the host shares it, unlike the monotonic clock."""
    return time.time()
