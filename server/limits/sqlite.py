"""Rate limits and quotas in the ledger database, shared by every process on the host.

Each decision is one operation of the group-commit writer, so it runs inside a `BEGIN IMMEDIATE`
transaction: the read-decide-write of all a call's buckets (or both its budgets) happens under
SQLite's write lock, which makes it atomic across threads and processes alike.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from server.audit.owner import current_owner
from server.audit.writer import Batch, GroupCommitWriter
from server.limits.backend import Clock
from server.limits.gcra import ALLOWED, Admission, BucketSpec, decide_all
from server.limits.quota import Budgets, QuotaDecision, decide, period_keys

__all__ = ["LIMITS_SCHEMA", "SqliteLimits", "SqliteQuota"]

LIMITS_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS limit_buckets (
        key TEXT PRIMARY KEY,
        tat REAL NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS quota_usage (
        principal TEXT NOT NULL,
        period TEXT NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (principal, period)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS quota_reservations (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        day TEXT NOT NULL,
        month TEXT NOT NULL,
        units INTEGER NOT NULL,
        state TEXT NOT NULL,
        owner TEXT NOT NULL,
        created REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS quota_reservations_open ON quota_reservations (state) WHERE state = 'reserved'",
)

_SWEEP_EVERY = 4096


class SqliteLimits:
    """GCRA buckets in the `limit_buckets` table."""

    def __init__(self, writer: GroupCommitWriter, clock: Clock = time.time) -> None:
        self._writer = writer
        self._clock = clock
        self._calls = 0

    async def acquire(self, buckets: Sequence[BucketSpec]) -> Admission:
        if not buckets:
            return ALLOWED
        self._calls += 1
        sweep = self._calls % _SWEEP_EVERY == 0
        clock = self._clock

        def op(conn: sqlite3.Connection, _batch: Batch) -> Admission:
            now = clock()
            states: dict[str, float] = {}
            for spec in buckets:
                row = conn.execute("SELECT tat FROM limit_buckets WHERE key = ?", (spec.key,)).fetchone()
                if row is not None:
                    states[spec.key] = float(row[0])
            admission, updates = decide_all(states, buckets, now)
            if updates:
                conn.executemany(
                    "INSERT INTO limit_buckets (key, tat) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
                    list(updates.items()),
                )
            if sweep:
                # A TAT in the past means "empty bucket", the same as no row.
                conn.execute("DELETE FROM limit_buckets WHERE tat < ?", (now,))
            return admission

        # The decision is handed back before the commit: the call's audit intent, awaited next,
        # is committed in the same or a later batch, so a call never runs on an uncommitted slot.
        return await self._writer.run(op, early=True)

    def close(self) -> None:
        return None


class SqliteQuota:
    """Usage counters per principal and period, plus one row per reservation."""

    def __init__(self, writer: GroupCommitWriter, clock: Clock = time.time) -> None:
        self._writer = writer
        self._clock = clock

    async def reserve(
        self, reservation_id: str, principal: str, units: int, budgets: Budgets, *, force: bool = False
    ) -> QuotaDecision:
        clock = self._clock
        owner = current_owner()

        def op(conn: sqlite3.Connection, _batch: Batch) -> QuotaDecision:
            now = clock()
            day, month = period_keys(now)
            used_day, used_month = _used(conn, principal, day, month)
            decision = decide(units, budgets, used_day, used_month, now)
            if not decision.allowed and not force:
                return decision
            conn.execute(
                "INSERT INTO quota_reservations (id, principal, day, month, units, state, owner, created)"
                " VALUES (?, ?, ?, ?, ?, 'reserved', ?, ?)",
                (reservation_id, principal, day, month, units, owner, now),
            )
            _add(conn, principal, (day, month), units)
            return decision

        return await self._writer.run(op, early=True)

    async def settle(self, reservation_id: str, *, charge: bool, wait: bool = False) -> bool:
        op = settle_op(reservation_id, charge=charge)
        if wait:
            return await self._writer.run(op)
        # Committed with (or before) the call's audit outcome, which the caller awaits.
        self._writer.post(op)
        return True

    async def used(self, principal: str) -> tuple[int, int]:
        day, month = period_keys(self._clock())

        def op(conn: sqlite3.Connection, _batch: Batch) -> tuple[int, int]:
            return _used(conn, principal, day, month)

        return await self._writer.run(op)

    def close(self) -> None:
        return None


def settle_op(reservation_id: str, *, charge: bool) -> Callable[[sqlite3.Connection, Batch], bool]:
    def op(conn: sqlite3.Connection, _batch: Batch) -> bool:
        return settle_reservation(conn, reservation_id, charge=charge)

    return op


def settle_reservation(conn: sqlite3.Connection, reservation_id: str, *, charge: bool) -> bool:
    """Charge or refund one reservation, once: the update only matches a reservation still open."""
    row = conn.execute(
        "UPDATE quota_reservations SET state = ? WHERE id = ? AND state = 'reserved'"
        " RETURNING principal, day, month, units",
        ("charged" if charge else "refunded", reservation_id),
    ).fetchone()
    if row is None:
        return False
    if not charge:
        _add(conn, str(row[0]), (str(row[1]), str(row[2])), -int(row[3]))
    return True


def _used(conn: sqlite3.Connection, principal: str, day: str, month: str) -> tuple[int, int]:
    rows = dict(
        conn.execute(
            "SELECT period, used FROM quota_usage WHERE principal = ? AND period IN (?, ?)", (principal, day, month)
        ).fetchall()
    )
    return int(rows.get(day, 0)), int(rows.get(month, 0))


def _add(conn: sqlite3.Connection, principal: str, periods: tuple[str, str], units: int) -> None:
    conn.executemany(
        "INSERT INTO quota_usage (principal, period, used) VALUES (?, ?, ?)"
        " ON CONFLICT (principal, period) DO UPDATE SET used = used + excluded.used",
        [(principal, period, units) for period in periods],
    )
