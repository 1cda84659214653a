"""The audit log: an append-only hash chain of intent and outcome records in SQLite.

Every record's body is canonical JSON that includes its own `seq`; its hash covers the previous
record's hash and the body, so editing, deleting, reordering or inserting a record breaks the chain
at that `seq`. Appends run inside the group-commit writer's transaction, which holds SQLite's
write lock, so records from several processes still form one linear chain with contiguous `seq`.
Periodically a checkpoint row signed with the external key pins `(seq, hash)`, and the newest
signed head is also written outside the database (`server.audit.keys`).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.audit.canonical import GENESIS, canonical_json, chain_hash, checkpoint_mac
from server.audit.keys import load_key, write_head
from server.audit.writer import Batch

__all__ = ["AUDIT_SCHEMA", "AuditLog", "RecordFields", "utc_timestamp"]

RecordFields = Mapping[str, Any]

AUDIT_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS audit_records (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        call_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        principal TEXT NOT NULL,
        tool TEXT NOT NULL,
        status TEXT,
        body TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )
    """,
    # Intents only: every call's records start with its intent, so finding the intent finds the
    # call; indexing outcomes too would cost each outcome commit one more page.
    "CREATE INDEX IF NOT EXISTS audit_records_call ON audit_records (call_id) WHERE kind = 'intent'",
    """
    CREATE TABLE IF NOT EXISTS audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL,
        ts TEXT NOT NULL
    )
    """,
    # Calls whose intent is committed and whose outcome is not: what a crash leaves dangling.
    """
    CREATE TABLE IF NOT EXISTS audit_open_calls (
        call_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        intent_seq INTEGER NOT NULL,
        principal TEXT NOT NULL,
        tool TEXT NOT NULL,
        source TEXT
    ) WITHOUT ROWID
    """,
)

_CHECKPOINT_EVERY_S = 1.0
_CHECKPOINT_EVERY_RECORDS = 256


# (whole second, its formatted prefix): two records in the same second format it once.
_second: tuple[int, str] = (-1, "")


def utc_timestamp(at: float | None = None) -> str:
    """`at` (default: now) as ISO-8601 UTC with milliseconds, e.g. `2026-01-31T23:59:59.999Z`."""
    global _second
    now = time.time() if at is None else at
    # Rounded to the microsecond first, exactly as `datetime.fromtimestamp` does.
    frac, whole = math.modf(now)
    micros = round(frac * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    cached = _second
    if cached[0] == second:
        prefix = cached[1]
    else:
        prefix = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second = (second, prefix)
    return f"{prefix}{micros // 1000:03d}Z"


class AuditLog:
    """Appends records; call `setup` on the writer's connection before the first append."""

    def __init__(self, key_path: Path, head_path: Path) -> None:
        self.key_path = key_path
        self.head_path = head_path
        self._key: bytes | None = None
        self._last_checkpoint_seq = 0
        self._last_checkpoint_at = 0.0
        # Commits note their head here (cheaply, on whichever thread committed); the writer
        # thread's housekeeping writes it out (`flush_head`).
        self._head_pending: tuple[int, str] | None = None
        self._head_lock = threading.Lock()
        self._closing: list[str] = []  # calls whose outcome is committed and open-call row is not deleted

    @property
    def key(self) -> bytes:
        if self._key is None:
            raise RuntimeError("the audit log is not set up")
        return self._key

    def setup(self, conn: sqlite3.Connection) -> None:
        """Create the tables and load the key (created only while the chain is still empty).

        Raises:
            server.audit.keys.AuditKeyMissing: records exist but the key file does not.
        """
        for statement in AUDIT_SCHEMA:
            conn.execute(statement)
        empty = conn.execute("SELECT 1 FROM audit_records LIMIT 1").fetchone() is None
        self._key = load_key(self.key_path, create=empty)

    # -- appending (writer thread, inside a batch) -----------------------------------------

    def append(
        self,
        conn: sqlite3.Connection,
        batch: Batch,
        *,
        kind: str,
        call_id: str,
        principal: str,
        tool: str,
        status: str | None,
        fields: RecordFields,
        at: float | None = None,
    ) -> int:
        """Append one record to the chain; returns its `seq`."""
        head = batch.cache.get("audit_head")
        if head is None:
            row = conn.execute("SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1").fetchone()
            head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        seq = head[0] + 1
        ts = utc_timestamp(at)
        record = dict(fields)
        record.update(v=1, seq=seq, kind=kind, call_id=call_id, ts=ts, principal=principal, tool=tool, status=status)
        body = canonical_json(record)
        digest = chain_hash(head[1], body)
        conn.execute(
            "INSERT INTO audit_records (seq, kind, call_id, ts, principal, tool, status, body, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, kind, call_id, ts, principal, tool, status, body.decode("utf-8"), head[1], digest),
        )
        batch.cache["audit_head"] = (seq, digest)
        if "audit_checkpoint" not in batch.before_commit:
            batch.before_commit["audit_checkpoint"] = self._checkpoint
            batch.after_commit["audit_head"] = lambda: self.note_head(batch)
        return seq

    def open_call(
        self, conn: sqlite3.Connection, *, call_id: str, owner: str, seq: int, principal: str, tool: str, source: str
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO audit_open_calls (call_id, owner, intent_seq, principal, tool, source)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, owner, seq, principal, tool, source),
        )

    def close_call(self, conn: sqlite3.Connection, call_id: str) -> bool:
        """Forget the call's open intent; whether there was one."""
        return conn.execute("DELETE FROM audit_open_calls WHERE call_id = ?", (call_id,)).rowcount > 0

    def close_call_later(self, batch: Batch, call_id: str) -> None:
        """Forget the call's open intent in a later transaction, once this batch is committed.

        The outcome commit then writes one page fewer. Until the row goes, reconciliation sees
        the call's outcome and leaves it alone (`server.audit.reconcile`).
        """
        closing: list[str] = batch.cache.setdefault("audit_closing", [])
        closing.append(call_id)
        if len(closing) == 1:
            batch.after_commit["audit_closing"] = lambda: self._closed(closing)

    def _closed(self, call_ids: list[str]) -> None:
        with self._head_lock:
            self._closing.extend(call_ids)

    @property
    def closing(self) -> bool:
        """Whether committed outcomes still have open-call rows to delete (`delete_closed`)."""
        return bool(self._closing)

    def delete_closed(self, conn: sqlite3.Connection, _batch: Batch) -> int:
        """Delete the open-call rows of committed outcomes (a writer operation)."""
        with self._head_lock:
            call_ids, self._closing = self._closing, []
        conn.executemany("DELETE FROM audit_open_calls WHERE call_id = ?", [(call_id,) for call_id in call_ids])
        return len(call_ids)

    def _checkpoint(self, conn: sqlite3.Connection, batch: Batch) -> None:
        seq, digest = batch.cache["audit_head"]
        now = time.monotonic()
        due = (
            seq - self._last_checkpoint_seq >= _CHECKPOINT_EVERY_RECORDS
            or now - self._last_checkpoint_at >= _CHECKPOINT_EVERY_S
        )
        if not due:
            return
        conn.execute(
            "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, mac, ts) VALUES (?, ?, ?, ?)",
            (seq, digest, checkpoint_mac(self.key, seq, digest), utc_timestamp()),
        )
        self._last_checkpoint_seq = seq
        self._last_checkpoint_at = now

    def note_head(self, batch: Batch) -> None:
        """Remember the head a committed batch reached, to be signed outside the database."""
        head = batch.cache.get("audit_head")
        if head is not None:
            with self._head_lock:
                # Batches of one process commit in chain order, so the newest seq wins.
                if self._head_pending is None or head[0] > self._head_pending[0]:
                    self._head_pending = head

    def flush_head(self) -> None:
        """Write the newest committed head outside the database (writer thread, or after close)."""
        with self._head_lock:
            pending, self._head_pending = self._head_pending, None
        if pending is None or self._key is None:
            return
        write_head(self.head_path, self._key, pending[0], pending[1])
