"""The credential rows: one SQLite file of its own, `credentials.db` in the data directory.

Why not a table in `toolkiln.db`: this file holds nothing but ciphertexts, is created 0600, is
read by the CLI with no server running, and can be left out of (or handled apart from) the
backups of the state and audit databases. Rows are written one transaction each, so a rotation
killed at any point leaves every row whole, under either the old or the new key.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from server.sqlite_wal import enable_wal, retry_locked

__all__ = ["CredentialRow", "CredentialStore", "normalize_origin"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,          -- a principal id, or '' for a shared credential
    origin TEXT NOT NULL,         -- scheme://host[:port] the secret may be sent to
    kind TEXT NOT NULL,
    key_id TEXT NOT NULL,         -- fingerprint of the key that sealed the ciphertext
    ciphertext BLOB NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (name, owner)
)
"""


def normalize_origin(url: str) -> str:
    """`HTTPS://API.example.com:443/v1` → `https://api.example.com`.

    Raises:
        ValueError: not an absolute http(s) URL.
    """
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL:
        raise ValueError(f"not a URL: {url!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    default = 443 if parsed.scheme == "https" else 80
    port = f":{parsed.port}" if parsed.port not in (None, default) else ""
    return f"{parsed.scheme}://{host}{port}"


@dataclass(frozen=True, slots=True)
class CredentialRow:
    id: str
    name: str
    owner: str
    origin: str
    kind: str
    key_id: str
    ciphertext: bytes
    created_at: float
    updated_at: float


_COLUMNS = "id, name, owner, origin, kind, key_id, ciphertext, created_at, updated_at"


def _row(values: tuple[Any, ...]) -> CredentialRow:
    id_, name, owner, origin, kind, key, blob, created, updated = values
    return CredentialRow(
        str(id_), str(name), str(owner), str(origin), str(kind), str(key), bytes(blob), float(created), float(updated)
    )


class CredentialStore:
    """Row access; encryption is the caller's (`credentials.vault`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=5000")
            enable_wal(self._db)
            self._db.execute("PRAGMA synchronous=FULL")
            retry_locked(lambda: self._db.execute(_SCHEMA))

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM credentials").fetchone()[0])

    def find(self, name: str, owner: str) -> CredentialRow | None:
        with self._lock:
            found = self._db.execute(
                f"SELECT {_COLUMNS} FROM credentials WHERE name = ? AND owner = ?",  # noqa: S608 - constant columns
                (name, owner),
            ).fetchone()
        return None if found is None else _row(found)

    def all(self) -> list[CredentialRow]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM credentials ORDER BY name, owner").fetchall()  # noqa: S608
        return [_row(r) for r in rows]

    def owners_of(self, name: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT owner FROM credentials WHERE name = ? ORDER BY owner", (name,)).fetchall()
        return [str(r[0]) for r in rows]

    def upsert(self, row: CredentialRow) -> CredentialRow:
        """Insert, or replace the value of the row with the same (name, owner), keeping its id and age."""
        with self._tx() as db:
            existing = db.execute(
                "SELECT id, created_at FROM credentials WHERE name = ? AND owner = ?", (row.name, row.owner)
            ).fetchone()
            if existing is not None and str(existing[0]) == row.id:
                db.execute(
                    "UPDATE credentials SET origin = ?, kind = ?, key_id = ?, ciphertext = ?, updated_at = ? "
                    "WHERE id = ?",
                    (row.origin, row.kind, row.key_id, row.ciphertext, row.updated_at, row.id),
                )
                return row
            if existing is not None:
                db.execute("DELETE FROM credentials WHERE id = ?", (existing[0],))
            db.execute(
                f"INSERT INTO credentials ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    row.id,
                    row.name,
                    row.owner,
                    row.origin,
                    row.kind,
                    row.key_id,
                    row.ciphertext,
                    row.created_at,
                    row.updated_at,
                ),
            )
        return row

    def delete(self, name: str, owner: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM credentials WHERE name = ? AND owner = ?", (name, owner)).rowcount > 0

    def not_under(self, key: str) -> list[CredentialRow]:
        """Rows sealed by any key other than `key` (what a rotation still has to do)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM credentials WHERE key_id != ? ORDER BY id",  # noqa: S608
                (key,),
            ).fetchall()
        return [_row(r) for r in rows]

    def reseal(self, row: CredentialRow, ciphertext: bytes, key: str) -> bool:
        """Swap in a re-encrypted ciphertext if the row is unchanged since read; timestamps kept."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE credentials SET ciphertext = ?, key_id = ? WHERE id = ? AND ciphertext = ?",
                (ciphertext, key, row.id, row.ciphertext),
            )
            return cursor.rowcount == 1

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        with self._lock:
            self._db.close()
