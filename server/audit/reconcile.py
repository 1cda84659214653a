"""Crash reconciliation: close what a dead process left open, so no call is silently lost.

A process killed mid-call can leave three things behind, all tagged with its owner id:

- an intent with no outcome (in `audit_open_calls`): the executor may or may not have acted
  upstream, so the call gets an `outcome_unknown` record; its quota reservation is charged (the
  upstream may have done the work) and the outcome records that charge, keeping "quota used"
  equal to "charges in the audit log";
- a quota reservation with no intent: the call never reached its executor, so it is refunded;
- an idempotency claim still pending: marked `orphaned`, so a retry with the same key may resume
  it (and is not charged again when the dead call was charged).

Only owners that are no longer alive are touched, so a sibling process's calls in flight are safe.
An open-call row is deleted shortly after its call's outcome commits, not in the same transaction,
so a dead owner may also leave rows of calls that did finish: those are only deleted.
"""

from __future__ import annotations

import sqlite3

from server.audit.log import AuditLog
from server.audit.owner import owner_alive
from server.audit.writer import Batch
from server.limits.sqlite import settle_reservation

__all__ = ["reconcile", "reconcile_in"]


def reconcile(conn: sqlite3.Connection, log: AuditLog) -> int:
    """Reconcile every dead owner's leftovers in one transaction of its own (at start-up)."""
    batch = Batch()
    conn.execute("BEGIN IMMEDIATE")
    try:
        closed = reconcile_in(conn, batch, log)
        for hook in batch.before_commit.values():
            hook(conn, batch)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if closed:
        log.note_head(batch)
        log.flush_head()
    return closed


def reconcile_in(conn: sqlite3.Connection, batch: Batch, log: AuditLog) -> int:
    """Reconcile inside a writer batch (periodically, for siblings that died while we run)."""
    return _reconcile(conn, batch, log)


def _dead(owners: list[str]) -> set[str]:
    return {owner for owner in owners if not owner_alive(owner)}


def _reconcile(conn: sqlite3.Connection, batch: Batch, log: AuditLog) -> int:
    owners = [str(row[0]) for row in conn.execute("SELECT DISTINCT owner FROM audit_open_calls")]
    owners += [
        str(row[0]) for row in conn.execute("SELECT DISTINCT owner FROM quota_reservations WHERE state = 'reserved'")
    ]
    owners += [str(row[0]) for row in conn.execute("SELECT DISTINCT owner FROM idempotency WHERE state = 'pending'")]
    dead = _dead(sorted(set(owners)))
    if not dead:
        return 0
    closed = 0
    for owner in sorted(dead):
        calls = conn.execute(
            "SELECT call_id, principal, tool, source, intent_seq FROM audit_open_calls WHERE owner = ?"
            " ORDER BY intent_seq",
            (owner,),
        ).fetchall()
        for call_id, principal, tool, source, intent_seq in calls:
            if _has_outcome(conn, str(call_id), int(intent_seq)):
                # Its outcome was committed; only the deferred deletion of this row was lost.
                log.close_call(conn, str(call_id))
                continue
            units = _charge(conn, str(call_id))
            log.append(
                conn,
                batch,
                kind="outcome",
                call_id=str(call_id),
                principal=str(principal),
                tool=str(tool),
                status="outcome_unknown",
                fields={
                    "source": source,
                    "cost": units // 1_000_000 if units % 1_000_000 == 0 else units / 1_000_000,
                    "detail": "the serving process ended before the outcome was recorded",
                },
            )
            log.close_call(conn, str(call_id))
            closed += 1
        # Reservations whose call never committed an intent: the executor never ran.
        unused = conn.execute(
            "SELECT id FROM quota_reservations WHERE owner = ? AND state = 'reserved'", (owner,)
        ).fetchall()
        for (reservation_id,) in unused:
            settle_reservation(conn, str(reservation_id), charge=False)
        conn.execute("UPDATE idempotency SET state = 'orphaned' WHERE owner = ? AND state = 'pending'", (owner,))
    return closed


def _has_outcome(conn: sqlite3.Connection, call_id: str, intent_seq: int) -> bool:
    # A call's outcome comes after its intent; open rows are recent, so the scan is short.
    row = conn.execute(
        "SELECT 1 FROM audit_records WHERE seq > ? AND call_id = ? AND kind = 'outcome' LIMIT 1",
        (intent_seq, call_id),
    ).fetchone()
    return row is not None


def _charge(conn: sqlite3.Connection, call_id: str) -> int:
    """Charge the call's open reservation, if any; returns the units now charged for it."""
    row = conn.execute("SELECT state, units FROM quota_reservations WHERE id = ?", (call_id,)).fetchone()
    if row is None:
        return 0
    if row[0] == "reserved":
        conn.execute("UPDATE quota_reservations SET state = 'charged' WHERE id = ?", (call_id,))
        return int(row[1])
    return int(row[1]) if row[0] == "charged" else 0
