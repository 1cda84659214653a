"""Idempotency claims and stored results: memory and SQLite.

A claim is keyed by a digest of (principal, tool, key), so one caller's key never reveals or
replays another's result, and it remembers a fingerprint of the arguments: the same key with
different arguments is a client bug, refused rather than answered with the wrong result.

A claim whose process died mid-call (found dead by pid and start time, or marked `orphaned` by
crash reconciliation) may be resumed by a retry. The retry is not charged again when the dead
call was charged (or will be, once reconciled: its intent was committed).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from server.audit.owner import current_owner, owner_alive
from server.audit.writer import Batch, GroupCommitWriter
from server.limits.backend import Clock

__all__ = ["IDEMPOTENCY_SCHEMA", "Claim", "IdempotencyStore", "MemoryIdempotency", "SqliteIdempotency"]

IDEMPOTENCY_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS idempotency (
        scope TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        call_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        result TEXT,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS idempotency_pending ON idempotency (owner) WHERE state = 'pending'",
)

ClaimKind = Literal["claimed", "replay", "conflict", "in_progress", "resumed"]


@dataclass(frozen=True, slots=True)
class Claim:
    kind: ClaimKind
    result: str | None = None


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, fingerprint: str, call_id: str, ttl_s: float) -> Claim: ...

    def complete(self, scope: str, call_id: str, result: str, ttl_s: float) -> None:
        """Store the result (committed with the call's audit outcome)."""
        ...

    def release(self, scope: str, call_id: str) -> None:
        """Drop a claim whose call failed, so a retry runs again."""
        ...


class SqliteIdempotency:
    def __init__(self, writer: GroupCommitWriter, clock: Clock = time.time) -> None:
        self._writer = writer
        self._clock = clock

    async def claim(self, scope: str, fingerprint: str, call_id: str, ttl_s: float) -> Claim:
        now = self._clock()
        owner = current_owner()

        def op(conn: sqlite3.Connection, _batch: Batch) -> Claim:
            row = conn.execute(
                "SELECT fingerprint, state, call_id, owner, result, expires_at FROM idempotency WHERE scope = ?",
                (scope,),
            ).fetchone()
            if row is not None and float(row[5]) < now:
                row = None  # expired: as if never seen
            if row is None:
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, fingerprint, state, call_id, owner, result, expires_at)"
                    " VALUES (?, ?, 'pending', ?, ?, NULL, ?)",
                    (scope, fingerprint, call_id, owner, now + ttl_s),
                )
                return Claim("claimed")
            old_fingerprint, state, old_call, old_owner, result, _ = row
            if old_fingerprint != fingerprint:
                return Claim("conflict")
            if state == "done":
                return Claim("replay", result)
            if state == "pending" and owner_alive(str(old_owner)):
                return Claim("in_progress")
            conn.execute(
                "UPDATE idempotency SET state = 'pending', call_id = ?, owner = ?, expires_at = ? WHERE scope = ?",
                (call_id, owner, now + ttl_s, scope),
            )
            return Claim("resumed" if _was_charged(conn, str(old_call)) else "claimed")

        return await self._writer.run(op, early=True)

    def complete(self, scope: str, call_id: str, result: str, ttl_s: float) -> None:
        expires = self._clock() + ttl_s

        def op(conn: sqlite3.Connection, _batch: Batch) -> None:
            conn.execute(
                "UPDATE idempotency SET state = 'done', result = ?, expires_at = ? WHERE scope = ? AND call_id = ?",
                (result, expires, scope, call_id),
            )

        self._writer.post(op)

    def release(self, scope: str, call_id: str) -> None:
        def op(conn: sqlite3.Connection, _batch: Batch) -> None:
            conn.execute(
                "DELETE FROM idempotency WHERE scope = ? AND call_id = ? AND state = 'pending'", (scope, call_id)
            )

        self._writer.post(op)


def _was_charged(conn: sqlite3.Connection, call_id: str) -> bool:
    """Whether the dead call was, or on reconciliation will be, charged: its intent was committed."""
    row = conn.execute("SELECT state FROM quota_reservations WHERE id = ?", (call_id,)).fetchone()
    if row is not None and row[0] == "charged":
        return True
    if row is not None and row[0] == "refunded":
        return False
    intent = conn.execute(
        "SELECT 1 FROM audit_records WHERE call_id = ? AND kind = 'intent' LIMIT 1", (call_id,)
    ).fetchone()
    return intent is not None


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    state: str
    call_id: str
    result: str | None
    expires_at: float


class MemoryIdempotency:
    """Claims in this process only (used when no ledger database is configured)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    async def claim(self, scope: str, fingerprint: str, call_id: str, ttl_s: float) -> Claim:
        with self._lock:
            now = self._clock()
            entry = self._entries.get(scope)
            if entry is None or entry.expires_at < now:
                self._entries[scope] = _Entry(fingerprint, "pending", call_id, None, now + ttl_s)
                return Claim("claimed")
            if entry.fingerprint != fingerprint:
                return Claim("conflict")
            if entry.state == "done":
                return Claim("replay", entry.result)
            return Claim("in_progress")

    def complete(self, scope: str, call_id: str, result: str, ttl_s: float) -> None:
        with self._lock:
            entry = self._entries.get(scope)
            if entry is not None and entry.call_id == call_id:
                entry.state, entry.result, entry.expires_at = "done", result, self._clock() + ttl_s

    def release(self, scope: str, call_id: str) -> None:
        with self._lock:
            entry = self._entries.get(scope)
            if entry is not None and entry.call_id == call_id and entry.state == "pending":
                del self._entries[scope]
