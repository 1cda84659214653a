"""`verify`: prove the audit chain, or name the first record that breaks it.

Three independent checks:

1. the chain itself: `seq` contiguous from 1, each `prev_hash` equal to the previous record's hash,
   each hash recomputed from the stored body, and each row's indexed columns equal to its body
   (so a search cannot be fooled by a column edited behind the body's back);
2. the checkpoint rows: each MAC valid under the external key and each pinned hash equal to the
   record's hash at that `seq` (a chain rewritten with database-only access fails here);
3. the signed head outside the database: valid, and the chain reaches it with the same hash
   (deleting the newest records fails here even if their checkpoint rows were deleted too).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from server.audit.canonical import GENESIS, chain_hash, checkpoint_mac
from server.audit.keys import load_key, read_head

__all__ = ["VerifyReport", "verify_chain"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    records: int
    last_seq: int
    checkpoints: int
    head_seq: int | None
    first_bad_seq: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        if self.ok:
            head = "no signed head yet" if self.head_seq is None else f"signed head at seq {self.head_seq}"
            return (
                f"audit chain OK: {self.records} records (seq 1..{self.last_seq}), "
                f"{self.checkpoints} checkpoints verified, {head}"
            )
        return f"audit chain BROKEN at seq {self.first_bad_seq}: {self.problem}"


_COLUMNS = ("kind", "call_id", "ts", "principal", "tool", "status")


def verify_chain(db_path: Path, key_path: Path, head_path: Path) -> VerifyReport:
    """Verify the chain in `db_path` against the key and signed head kept beside it.

    Raises:
        server.audit.keys.AuditKeyMissing: there is no key to verify checkpoints with.
    """
    key = load_key(key_path, create=False)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return _verify(conn, key, head_path)
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection, key: bytes, head_path: Path) -> VerifyReport:
    pinned: dict[int, str] = {}
    checkpoints = 0
    for seq, digest, mac in conn.execute("SELECT seq, hash, mac FROM audit_checkpoints ORDER BY seq"):
        if not secrets.compare_digest(str(mac), checkpoint_mac(key, int(seq), str(digest))):
            return _broken(checkpoints, int(seq), "checkpoint signature invalid (forged or altered checkpoint)")
        pinned[int(seq)] = str(digest)
        checkpoints += 1
    head = read_head(head_path)
    if head is not None and not head.valid(key):
        return _broken(checkpoints, max(head.seq, 0), "signed head outside the database is invalid")
    if head is not None:
        pinned.setdefault(head.seq, head.hash)
        if pinned[head.seq] != head.hash:
            return _broken(checkpoints, head.seq, "signed head disagrees with the checkpoint rows")

    expected_seq = 1
    prev = GENESIS
    rows = conn.execute(
        "SELECT seq, kind, call_id, ts, principal, tool, status, body, prev_hash, hash FROM audit_records ORDER BY seq"
    )
    for row in rows:
        seq = int(row[0])
        if seq != expected_seq:
            return _broken(checkpoints, expected_seq, f"record {expected_seq} is missing (next present is {seq})")
        problem = _check_record(row, prev)
        if problem == _LINK and seq > 1:
            return _broken(
                checkpoints, seq - 1, f"record {seq - 1} was altered and re-hashed: record {seq} no longer links to it"
            )
        if problem is not None:
            return _broken(checkpoints, seq, "prev_hash is not the chain's start" if problem == _LINK else problem)
        digest = str(row[9])
        want = pinned.get(seq)
        if want is not None and want != digest:
            return _broken(checkpoints, seq, "record differs from the signed checkpoint (chain rewritten)")
        prev = digest
        expected_seq += 1
    last = expected_seq - 1
    beyond = [seq for seq in pinned if seq > last]
    if beyond:
        return _broken(
            checkpoints,
            last + 1,
            f"records after seq {last} are missing: a signed checkpoint covers seq {max(beyond)} (truncated)",
        )
    return VerifyReport(
        ok=True, records=last, last_seq=last, checkpoints=checkpoints, head_seq=None if head is None else head.seq
    )


def _check_record(row: tuple[object, ...], prev: str) -> str | None:
    """Checks one record on its own, then its link to the record before it."""
    seq = int(str(row[0]))
    body = str(row[7])
    if chain_hash(str(row[8]), body.encode("utf-8")) != row[9]:
        return "hash does not match the record body (edited)"
    try:
        data = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if not isinstance(data, dict) or data.get("seq") != seq:
        return "body names a different seq (moved, reordered or inserted)"
    for index, column in enumerate(_COLUMNS, start=1):
        if data.get(column) != row[index]:
            return f"column '{column}' differs from the hashed body (edited)"
    if row[8] != prev:
        return _LINK
    return None


# A record that is consistent in itself but not linked to its predecessor means the predecessor
# was altered and re-hashed (editing only this record's link would have broken its own hash).
_LINK = "link"


def _broken(checkpoints: int, seq: int, problem: str) -> VerifyReport:
    return VerifyReport(
        ok=False,
        records=0,
        last_seq=0,
        checkpoints=checkpoints,
        head_seq=None,
        first_bad_seq=seq,
        problem=problem,
    )
