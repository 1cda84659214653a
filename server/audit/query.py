"""Reading the audit log: tail, search and export, on a read-only connection.

Records are yielded as their hashed bodies plus `hash` and `prev_hash`, so an export can be
re-verified elsewhere with nothing but the canonical-JSON rule and the hash function.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SearchFilter", "export_records", "search_records", "tail_records"]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    principal: str | None = None
    tool: str | None = None
    status: str | None = None
    call_id: str | None = None
    kind: str | None = None
    since: str | None = None  # an ISO-8601 UTC timestamp prefix, compared as text
    until: str | None = None


def _connect(db: Path) -> sqlite3.Connection:
    if not db.exists():
        raise FileNotFoundError(f"no audit log at {db}")
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _record(body: str, prev_hash: str, digest: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(body)
    record["prev_hash"] = prev_hash
    record["hash"] = digest
    return record


_SELECT = "SELECT body, prev_hash, hash FROM audit_records"


def tail_records(db: Path, count: int) -> list[dict[str, Any]]:
    """The newest `count` records, oldest first."""
    conn = _connect(db)
    try:
        rows = conn.execute(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (max(0, count),)).fetchall()
    finally:
        conn.close()
    return [_record(*row) for row in reversed(rows)]


def search_records(db: Path, where: SearchFilter, *, limit: int = 1000) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("principal", where.principal),
        ("tool", where.tool),
        ("status", where.status),
        ("call_id", where.call_id),
        ("kind", where.kind),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.call_id is not None:
        # The index holds intents only; a call's other records come after its intent.
        clauses.append("seq >= coalesce((SELECT min(seq) FROM audit_records WHERE call_id = ? AND kind = 'intent'), 0)")
        params.append(where.call_id)
    if where.since is not None:
        clauses.append("ts >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("ts < ?")
        params.append(where.until)
    sql = _SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY seq LIMIT ?"
    params.append(max(0, limit))
    conn = _connect(db)
    try:
        return [_record(*row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def export_records(db: Path) -> Iterator[dict[str, Any]]:
    """Every record in seq order, streamed."""
    conn = _connect(db)
    try:
        for row in conn.execute(f"{_SELECT} ORDER BY seq"):
            yield _record(*row)
    finally:
        conn.close()
