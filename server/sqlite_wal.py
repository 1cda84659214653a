"""Opening a SQLite database that other processes may be opening, or creating, at the same moment.

Switching a new file to WAL needs the database to itself, and while one connection does it (or
rebuilds the WAL index) a racing connection gets "database is locked" at once, without SQLite's
busy handler ever waiting: two toolkiln processes starting on one data directory, a CLI command
beside a server. The race ends when the winner's switch is done, so the server storage, the
audit ledger and the credential store run their opening steps (journal mode, schema) through these
helpers, which start them over until the lock is free (for at most `OPEN_WAIT_S`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import anyio

__all__ = ["OPEN_WAIT_S", "enable_wal", "enable_wal_async", "retry_locked", "retry_locked_async"]

OPEN_WAIT_S = 10.0
_PAUSE_S = 0.02

T = TypeVar("T")


class _AsyncConnection(Protocol):
    async def execute(self, sql: str) -> object: ...


def _locked(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


def retry_locked(step: Callable[[], T], wait_s: float = OPEN_WAIT_S) -> T:
    """`step()`, started over while it fails on a locked database (`step` must be safe to repeat).

    Raises:
        sqlite3.OperationalError: still locked after `wait_s`, or any other failure.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return step()
        except sqlite3.OperationalError as error:
            if not _locked(error) or time.monotonic() >= deadline:
                raise
        time.sleep(_PAUSE_S)


async def retry_locked_async(step: Callable[[], Awaitable[T]], wait_s: float = OPEN_WAIT_S) -> T:
    """`retry_locked` for async steps, pausing without blocking the event loop."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await step()
        except sqlite3.OperationalError as error:
            if not _locked(error) or time.monotonic() >= deadline:
                raise
        await anyio.sleep(_PAUSE_S)


def enable_wal(conn: sqlite3.Connection, wait_s: float = OPEN_WAIT_S) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another connection holds the database."""
    retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"), wait_s)


async def enable_wal_async(db: _AsyncConnection, wait_s: float = OPEN_WAIT_S) -> None:
    """`enable_wal` for an aiosqlite connection."""
    await retry_locked_async(lambda: db.execute("PRAGMA journal_mode=WAL"), wait_s)
