"""Embedded state: one SQLite database in the data directory, opened with aiosqlite.

WAL so readers never block the writer, a busy timeout so a second process waits a bounded time
instead of failing, and a migrations table so later features add their tables in order.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from server.sqlite_wal import enable_wal_async, retry_locked_async
from server.version import __version__

__all__ = ["Storage"]

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS server_starts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        version TEXT NOT NULL
    )
    """,
    # API tokens (server.identity.tokens): only a SHA-256 of the secret is stored.
    """
    CREATE TABLE IF NOT EXISTS api_tokens (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        principal TEXT NOT NULL,
        roles TEXT NOT NULL,
        label TEXT,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL
    )
    """,
)


async def _migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema up to date under the write lock: of two processes opening a new file, one
    migrates and the other then finds the version written."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with db.execute("SELECT version FROM schema_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        for statement in _MIGRATIONS[current:]:
            await db.execute(statement)
        if row is None:
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(_MIGRATIONS),))
        else:
            await db.execute("UPDATE schema_version SET version = ?", (len(_MIGRATIONS),))
        await db.commit()
    except BaseException:
        if db.in_transaction:
            await db.rollback()
        raise


class Storage:
    """The server's SQLite database."""

    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        self.path = path
        self.db = db

    @classmethod
    async def open(cls, path: Path) -> Storage:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        try:
            await db.execute("PRAGMA busy_timeout=5000")
            await enable_wal_async(db)
            await db.execute("PRAGMA synchronous=NORMAL")
            await retry_locked_async(lambda: _migrate(db))
            storage = cls(path, db)
            await storage.record_start()
        except BaseException:
            # An open connection's thread would keep the process from ever exiting.
            await db.close()
            raise
        return storage

    async def record_start(self) -> None:
        await self.db.execute("INSERT INTO server_starts (version) VALUES (?)", (__version__,))
        await self.db.commit()

    async def ping(self) -> bool:
        """Whether the database answers a trivial query (used by /readyz)."""
        try:
            async with self.db.execute("SELECT 1") as cursor:
                return (await cursor.fetchone()) == (1,)
        except Exception:  # readiness reports, never raises
            return False

    async def close(self) -> None:
        await self.db.close()
