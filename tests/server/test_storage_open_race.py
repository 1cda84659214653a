"""Several processes opening one new data directory at once all start (toolkiln serve beside a CLI command).

Switching a new SQLite file to WAL needs it to itself, and SQLite refuses a racing connection
with "database is locked" at once, without waiting; the server storage, the audit ledger and the
credential store retry (the module registry does not yet).
Processes are stood in for by connections on their own threads: SQLite's locks work the same.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from credentials.store import CredentialStore
from server.sqlite_wal import enable_wal
from server.storage import Storage

pytestmark = pytest.mark.anyio

OPENERS = 6
ROUNDS = 15


async def test_storages_opened_together_on_a_new_file_all_open_and_migrate_once(tmp_path: Path) -> None:
    for round_no in range(ROUNDS):
        path = tmp_path / f"r{round_no}" / "toolkiln.db"
        opened: list[Storage] = []

        async def open_one(into: list[Storage] = opened, at: Path = path) -> None:
            into.append(await Storage.open(at))

        async with anyio.create_task_group() as group:
            for _ in range(OPENERS):
                group.start_soon(open_one)
        try:
            async with opened[0].db.execute("SELECT count(*) FROM schema_version") as cursor:
                assert await cursor.fetchone() == (1,)
            async with opened[0].db.execute("SELECT count(*) FROM server_starts") as cursor:
                assert await cursor.fetchone() == (OPENERS,)
        finally:
            for storage in opened:
                await storage.db.close()


def _open_store(path: Path, barrier: threading.Barrier, failures: list[BaseException]) -> None:
    try:
        barrier.wait()
        CredentialStore(path)
    except BaseException as exc:  # collected and asserted by the test
        failures.append(exc)


def _open_raw(path: Path, barrier: threading.Barrier, failures: list[BaseException]) -> None:
    # As the audit writer opens its database.
    try:
        barrier.wait()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        enable_wal(conn)
        conn.close()
    except BaseException as exc:
        failures.append(exc)


def test_credential_stores_and_raw_connections_opened_together_all_switch_to_wal(tmp_path: Path) -> None:
    for round_no in range(ROUNDS):
        folder = tmp_path / f"r{round_no}"
        folder.mkdir()
        failures: list[BaseException] = []
        barrier = threading.Barrier(OPENERS)
        threads = [
            threading.Thread(target=_open_store, args=(folder / "credentials.db", barrier, failures))
            if i % 2
            else threading.Thread(target=_open_raw, args=(folder / "audit.db", barrier, failures))
            for i in range(OPENERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
