"""Group commit: many small writes share one SQLite transaction; an idle writer commits inline.

Audit records, quota reservations, idempotency claims and shared rate-limit buckets are all tiny
writes that must be committed before a call proceeds. Committing each on its own costs a
transaction (and, with `synchronous=FULL`, an fsync) per write; here every write that arrives
while a transaction is running joins the next one, and each caller awaits the commit of the batch
that holds its write. Under load a batch holds dozens of writes, so throughput scales with
concurrency instead of with commit latency.

When one call is alone (nothing queued, no batch running, no other call in flight), a hand-over
to the writer thread and back costs far more than the transaction itself (a WAL commit with
`synchronous=NORMAL` does no fsync), so the caller commits the batch itself, on its own thread,
holding the connection's lock. As soon as work is queued for the writer thread, or the thread
holds the connection, callers queue behind it, so submission order is kept; and while calls
overlap they go to the thread too, where their writes share transactions. With
`synchronous=FULL` every commit waits for the disk, and inline commits would stall the event loop
for it: everything goes through the thread. An inline commit never waits for SQLite's write lock
either (another process may hold it for a while): if the lock is taken, the batch goes to the
thread, which waits up to `busy_timeout`.

Each operation is a plain function run inside the batch's transaction, wrapped in a savepoint so
one failing operation rolls back only itself. Operations run in the order they were submitted, so
an operation awaited after earlier fire-and-forget ones (`post`) is committed together with, or
after, all of them. Several processes may each run a writer on the same file: `BEGIN IMMEDIATE`
takes SQLite's write lock for the whole batch, so their batches interleave but never overlap.

WAL checkpoints (which copy pages and fsync) are taken off the commit path: the connection never
checkpoints on commit, where an inline commit would stall the event loop for the disk. The writer
thread's housekeeping does, on a connection of its own, which copies without blocking any writer.
A checkpoint racing a steady stream of commits never catches up, though, and SQLite only starts
the WAL over once one has; so when commits keep racing it and the WAL has grown past four
checkpoints' worth, one checkpoint runs holding the connection, with no write of this process in
between (a few pages left to copy, and its fsyncs).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from server.audit.batch import Batch, Job, LedgerUnavailable, Op, Tally, commit_here, commit_queued
from server.sqlite_wal import enable_wal, retry_locked

__all__ = ["Batch", "GroupCommitWriter", "LedgerUnavailable", "Op"]

T = TypeVar("T")
log = structlog.get_logger("toolkiln.ledger")

Synchronous = Literal["normal", "full"]


_STOP = object()


class GroupCommitWriter:
    """The one writer of a SQLite file in this process.

    `setup` functions run once on the fresh connection (schema, reconciliation). `housekeeping`
    runs in the writer thread every `housekeeping_s`, between batches or when idle (deferred side
    effects such as writing the signed head); `periodic` is an operation committed every
    `periodic_s`; `deferred` is asked at each housekeeping pass for an operation to commit then
    (writes that may lag behind the commit that caused them). `inline=False` sends every batch
    through the thread; by default batches are
    committed inline when `synchronous` is `normal` and at most `inline_max_calls` calls are in
    flight.
    """

    def __init__(
        self,
        path: Path,
        *,
        setup: Sequence[Callable[[sqlite3.Connection], None]] = (),
        synchronous: Synchronous = "normal",
        max_batch: int = 512,
        busy_timeout_ms: int = 5000,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_s: float = 0.05,
        periodic: Op[Any] | None = None,
        periodic_s: float = 30.0,
        deferred: Callable[[], Op[Any] | None] | None = None,
        inline: bool | None = None,
        inline_max_calls: int = 1,
        checkpoint_pages: int = 1000,
    ) -> None:
        self.path = path
        self._setup = tuple(setup)
        self._synchronous = synchronous.upper()
        self._inline = synchronous == "normal" if inline is None else inline
        self._max_batch = max_batch
        self._busy_timeout_ms = busy_timeout_ms
        self._housekeeping = housekeeping
        self._housekeeping_s = housekeeping_s
        self._next_housekeeping = 0.0
        self._periodic = periodic
        self._periodic_s = periodic_s
        self._deferred = deferred
        self._next_periodic = time.monotonic() + periodic_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._posted: list[Job[Any]] = []
        self._posted_lock = threading.Lock()
        # The connection is used by the writer thread and by inline commits, one at a time.
        self._conn: sqlite3.Connection | None = None
        self._conn_lock = threading.Lock()
        self._waits = True  # whether the connection's busy timeout is on (the thread) or off (inline)
        # Jobs handed to the writer thread and not yet committed: while any are, nobody commits inline.
        self._queued = 0
        self._queued_lock = threading.Lock()
        # Calls in flight in this process, kept by the ledger's outermost step (`CallsInFlight`).
        # With more than `inline_max_calls` of them, writes go to the thread even when it is idle:
        # there, writes of concurrent calls share transactions, and SQLite's work overlaps Python's.
        self.calls_in_flight = 0
        self._inline_max_calls = inline_max_calls
        self.tally = Tally()
        # WAL pages between checkpoints (SQLite's own default). How many commits that is depends
        # on how many pages a commit writes (a few inline, dozens for a big batch): learnt at each
        # checkpoint. A checkpoint racing commits never catches up, so SQLite never starts the WAL
        # over; past `4 * checkpoint_pages` the writer holds off this process's commits for one
        # checkpoint (a few pages to copy, two fsyncs) so that it does.
        self._checkpoint_pages = checkpoint_pages
        self._checkpoint_every = 64  # commits; adjusted by `_checkpoint`
        self._wal_frames = 0  # the WAL's length at the last checkpoint

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

    @property
    def batches(self) -> int:
        return self.tally.batches

    @property
    def operations(self) -> int:
        return self.tally.operations

    def close(self) -> None:
        """Commit whatever is queued, then stop the thread and close the connection."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        with self._posted_lock:
            posted, self._posted = self._posted, []
        if posted:
            self._enqueue(posted)
        self._queue.put(_STOP)
        thread.join()

    # -- submitting ------------------------------------------------------------------------

    async def run(self, op: Op[T], *, early: bool = False) -> T:
        """Run `op` in the next batch and return its result once the batch is committed.

        With `early=True` the result may be handed back as soon as `op` has run, before the
        commit: for decisions (admit or not) whose durability is guaranteed by a later awaited
        write of the same call, which the FIFO order commits together with or after this one.

        Raises:
            LedgerUnavailable: the batch could not be committed.
            Exception: whatever `op` raised (its own writes are rolled back).
        """
        if self._thread is None:
            self.start()
        job: Job[T] = Job(op=op, early=early)
        if self._commit_inline(job):
            if job.error is not None:
                raise job.error
            return job.result  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        job.loop = loop
        self._submit(job)
        return await job.future

    def run_now(self, op: Op[T]) -> tuple[bool, T | None]:
        """Commit `op` right here if the writer is idle: `(True, result)`; else `(False, None)`.

        Lets a caller that must not be interrupted skip the cancellation shield it would need
        around `run` (nothing can cancel a commit that never yields).

        Raises:
            LedgerUnavailable: the batch could not be committed.
            Exception: whatever `op` raised (its own writes are rolled back).
        """
        if self._thread is None:
            self.start()
        job: Job[T] = Job(op=op, early=False)
        if not self._commit_inline(job):
            return False, None
        if job.error is not None:
            raise job.error
        return True, job.result

    def post(self, op: Op[Any]) -> None:
        """Queue `op` without waiting; a later awaited operation's commit covers it.

        Posted operations ride along with the next `run` from this process (one transaction
        instead of two); if none follows in this event-loop turn, they go alone.
        """
        if self._thread is None:
            self.start()
        with self._posted_lock:
            self._posted.append(Job(op=op, early=False))
            first = len(self._posted) == 1
        if first:
            try:
                asyncio.get_running_loop().call_soon(self._flush_posted)
            except RuntimeError:
                self._flush_posted()

    def run_sync(self, op: Op[T]) -> T:
        """`run` for callers without an event loop (the CLI, process-level tests)."""
        if self._thread is None:
            self.start()
        job: Job[T] = Job(op=op, early=False)
        if not self._commit_inline(job):
            job.event = threading.Event()
            self._submit(job)
            job.event.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _flush_posted(self) -> None:
        if self._commit_inline(None):
            return
        with self._posted_lock:
            posted, self._posted = self._posted, []
        if posted:
            self._enqueue(posted)

    def _submit(self, job: Job[Any]) -> None:
        with self._posted_lock:
            posted, self._posted = self._posted, []
        self._enqueue([*posted, job] if posted else [job])

    def _enqueue(self, jobs: list[Job[Any]]) -> None:
        with self._queued_lock:
            self._queued += len(jobs)
        self._queue.put(jobs)

    def _commit_inline(self, job: Job[Any] | None) -> bool:
        """Commit the posted jobs and `job` on this thread if the writer is idle; whether it did."""
        if not self._inline or self._queued or self.calls_in_flight > self._inline_max_calls:
            return False
        if not self._conn_lock.acquire(blocking=False):
            return False
        try:
            conn = self._conn
            if conn is None or self._queued:
                return False
            posted: list[Job[Any]] = []
            if self._posted:
                with self._posted_lock:
                    posted, self._posted = self._posted, []
            jobs = posted if job is None else [*posted, job]
            if not jobs:
                return True
            if self._waits:
                conn.execute("PRAGMA busy_timeout=0")
                self._waits = False
            if commit_here(conn, jobs, self.tally):
                return True
            if posted:  # not committed: the posted jobs keep their place in line
                with self._posted_lock:
                    self._posted[:0] = posted
            return False
        finally:
            self._conn_lock.release()

    def _commit_queued(self, conn: sqlite3.Connection, jobs: list[Job[Any]]) -> None:
        """Commit jobs handed to the writer thread (connection lock held)."""
        if not self._waits:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            self._waits = True
        commit_queued(conn, jobs, self.tally, more=self._drain, max_batch=self._max_batch, settle=self._settle)

    def _settle(self, jobs: int) -> None:
        # Before the callers are woken, so one of them may already commit its next write inline.
        with self._queued_lock:
            self._queued -= jobs

    # -- the writer thread -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        enable_wal(conn)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        # Checkpoints happen in housekeeping, never inside a commit (see the module docstring).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        retry_locked(lambda: self._run_setup(conn))
        return conn

    def _run_setup(self, conn: sqlite3.Connection) -> None:
        # Repeatable: started over (from a clean state) while another process holds a new file.
        try:
            for setup in self._setup:
                setup(conn)
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _main(self, ready: threading.Event) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start(), which re-raises it
            self._failure = exc
            ready.set()
            return
        self._conn = conn
        ready.set()
        side: list[sqlite3.Connection] = []  # the checkpoint connection, opened on first use
        try:
            self._loop(conn, side)
        finally:
            for extra in side:
                extra.close()
            with self._conn_lock:
                self._conn = None
                conn.close()

    def _loop(self, conn: sqlite3.Connection, side: list[sqlite3.Connection]) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._housekeeping_s)
            except queue.Empty:
                self._tidy(conn, side)
                continue
            jobs: list[Job[Any]] = []
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    jobs.extend(item)
                if stopping or len(jobs) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if jobs:
                with self._conn_lock:
                    self._commit_queued(conn, jobs)
            if time.monotonic() >= self._next_housekeeping:
                # Under steady load the queue is never empty for long: tidy between batches too.
                self._tidy(conn, side)
        self._tidy(conn, side)

    def _tidy(self, conn: sqlite3.Connection, side: list[sqlite3.Connection]) -> None:
        self._next_housekeeping = time.monotonic() + self._housekeeping_s
        if self._periodic is not None and time.monotonic() >= self._next_periodic:
            self._next_periodic = time.monotonic() + self._periodic_s
            self._commit_from_thread(conn, self._periodic, "ledger_periodic_failed")
        op = self._deferred() if self._deferred is not None else None
        if op is not None:
            self._commit_from_thread(conn, op, "ledger_deferred_failed")
        if self._housekeeping is not None:
            try:
                self._housekeeping()
            except Exception:  # housekeeping never stops the writer
                log.exception("ledger_housekeeping_failed")
        if self.tally.since_checkpoint >= self._checkpoint_every:
            self._checkpoint(conn, side)

    def _checkpoint(self, conn: sqlite3.Connection, side: list[sqlite3.Connection]) -> None:
        # Passive: never waits for readers or other processes; it copies what it can, up to the
        # last commit it saw when it started. `frames` counts the WAL since SQLite last started
        # it over.
        commits, self.tally.since_checkpoint = self.tally.since_checkpoint, 0
        try:
            if not side:
                side.append(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False))
            batches = self.tally.batches
            _busy, frames, _copied = side[0].execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            grown, self._wal_frames = frames - self._wal_frames, frames
            if grown > 0 and commits > 0:  # (not when SQLite started the WAL over in between)
                self._checkpoint_every = max(1, min(1024, commits * self._checkpoint_pages // grown))
            if self.tally.batches != batches and frames >= 4 * self._checkpoint_pages:
                with self._conn_lock:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the WAL only grows until the next try
            log.warning("ledger_checkpoint_failed", error=str(exc)[:200])

    def _commit_from_thread(self, conn: sqlite3.Connection, op: Op[Any], failed: str) -> None:
        job: Job[Any] = Job(op=op, early=False)
        # Counted as queued, like any job the thread commits, so inline commits wait for it.
        with self._queued_lock:
            self._queued += 1
        with self._conn_lock:
            self._commit_queued(conn, [job])
        if job.error is not None:
            log.error(failed, error=str(job.error)[:200])

    def _drain(self, room: int) -> list[Job[Any]]:
        taken: list[Job[Any]] = []
        while len(taken) < room:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # nothing is queued after it; the main loop stops next
                break
            taken.extend(item)
        return taken


def now_s() -> float:
    """Wall-clock seconds; every process on the host shares it, unlike the monotonic clock."""
    return time.time()
