"""The module registry: every module version's state, validation report and approval pins.

It is its own SQLite file, `<data_dir>/modules.db`, with its own connection, rather than tables
in `toolkiln.db`: its changes are multi-statement transactions (a state change and its event,
an activation that demotes the version it replaces) that must not interleave with other users
of a shared connection, and the CLI and a running server write it from different processes.
`toolkiln modules approve` writes here, and a server sees the change on its next poll of
`revision()` (the newest event id). Every change writes an event row in the same transaction,
so the event table is both the history an operator reads and the change feed a server follows.

    draft ──validate──▶ validated ──approve──▶ approved ──activate──▶ active
      ▲                    │                      ▲  ◀──unload/rollback──┘
      └──── validate ──────┴── disable ──▶ disabled (files or tools changed, failures, operator)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import anyio

from modules.approval import Pins
from modules.manifest import ModuleRef

__all__ = ["REGISTRY_FILE", "ModuleEvent", "ModuleRecord", "ModuleRegistry", "State", "version_key"]

State = Literal["draft", "validated", "approved", "active", "disabled"]
STATES: tuple[State, ...] = ("draft", "validated", "approved", "active", "disabled")
REGISTRY_FILE = "modules.db"

# Schema version n is `_SCHEMA[:n]`; later changes append statements, never edit them.
_SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS module_versions (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        manifest TEXT,
        validation TEXT,
        pins TEXT,
        approved_by TEXT,
        approved_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS module_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        detail TEXT
    )
    """,
)


@dataclass(frozen=True, slots=True)
class ModuleRecord:
    name: str
    version: str
    state: State
    reason: str | None
    manifest: dict[str, Any] | None
    validation: dict[str, Any] | None
    pins: Pins | None
    approved_by: str | None
    approved_at: float | None
    created_at: float
    updated_at: float

    @property
    def ref(self) -> ModuleRef:
        return ModuleRef(self.name, self.version)


@dataclass(frozen=True, slots=True)
class ModuleEvent:
    id: int
    at: float
    name: str
    version: str
    event: str
    actor: str
    detail: dict[str, Any]


_COLUMNS = "name, version, state, reason, manifest, validation, pins, approved_by, approved_at, created_at, updated_at"


def _record(row: Sequence[Any]) -> ModuleRecord:
    return ModuleRecord(
        name=row[0],
        version=row[1],
        state=row[2],
        reason=row[3],
        manifest=None if row[4] is None else json.loads(row[4]),
        validation=None if row[5] is None else json.loads(row[5]),
        pins=None if row[6] is None else Pins.from_json(row[6]),
        approved_by=row[7],
        approved_at=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def version_key(version: str) -> tuple[int, int, int, int, str]:
    core, _, tag = version.partition("-")
    major, minor, patch = (int(part) for part in core.split("."))
    # A release sorts after its pre-releases.
    return (major, minor, patch, 0 if tag else 1, tag)


class ModuleRegistry:
    """Reads and changes module versions on one aiosqlite connection."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        # One transaction at a time on this connection; other processes wait on SQLite's lock.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, data_dir: Path) -> ModuleRegistry:
        """Open (creating or upgrading) `<data_dir>/modules.db`."""
        await anyio.Path(data_dir).mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(data_dir / REGISTRY_FILE, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute("BEGIN IMMEDIATE")
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            current = int(row[0]) if row else 0
            for statement in _SCHEMA[current:]:
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {len(_SCHEMA)}")
            await db.execute("COMMIT")
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    async def get(self, ref: ModuleRef) -> ModuleRecord | None:
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM module_versions WHERE name = ? AND version = ?",  # noqa: S608 - constant columns
            (ref.name, ref.version),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _record(row)

    async def versions(self, name: str | None = None) -> list[ModuleRecord]:
        """Every version (of `name`), by name then version order."""
        query = f"SELECT {_COLUMNS} FROM module_versions"  # noqa: S608 - constant columns
        params: tuple[str, ...] = ()
        if name is not None:
            query += " WHERE name = ?"
            params = (name,)
        async with self.db.execute(query, params) as cursor:
            rows = [_record(row) for row in await cursor.fetchall()]
        return sorted(rows, key=lambda r: (r.name, version_key(r.version)))

    async def active(self) -> dict[str, ModuleRecord]:
        """Name → the version that should be serving."""
        return {record.name: record for record in await self.versions() if record.state == "active"}

    async def revision(self) -> int:
        """Grows with every change, from any process: what a server polls."""
        async with self.db.execute("SELECT COALESCE(MAX(id), 0) FROM module_events") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def events(self, name: str | None = None, *, limit: int = 50) -> list[ModuleEvent]:
        query = "SELECT id, at, name, version, event, actor, detail FROM module_events"
        params: tuple[Any, ...] = ()
        if name is not None:
            query += " WHERE name = ?"
            params = (name,)
        query += " ORDER BY id DESC LIMIT ?"
        async with self.db.execute(query, (*params, limit)) as cursor:
            rows = await cursor.fetchall()
        return [
            ModuleEvent(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else {})
            for r in reversed(list(rows))
        ]

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        # IMMEDIATE takes the write lock up front, so a CLI and a server never interleave a
        # read-check-write; the connection runs in autocommit mode outside these blocks.
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def register(self, ref: ModuleRef, manifest: dict[str, Any] | None, *, actor: str) -> ModuleRecord:
        """Record a version found on disk as a draft (no change if it is already known)."""
        now = time.time()
        async with self._transaction():
            cursor = await self.db.execute(
                "INSERT OR IGNORE INTO module_versions (name, version, state, manifest, created_at, updated_at)"
                " VALUES (?, ?, 'draft', ?, ?, ?)",
                (ref.name, ref.version, None if manifest is None else json.dumps(manifest), now, now),
            )
            if cursor.rowcount:
                await self._event(ref, "registered", actor, {}, now)
        record = await self.get(ref)
        assert record is not None
        return record

    async def update(
        self,
        ref: ModuleRef,
        *,
        event: str,
        actor: str,
        state: State | None = None,
        expect: Iterable[State] | None = None,
        detail: dict[str, Any] | None = None,
        **columns: Any,
    ) -> bool:
        """Change one version (its state only if it is in `expect`), with an event; whether it changed.

        `columns` may set `reason`, `manifest`, `validation`, `pins`, `approved_by`, `approved_at`.
        """
        now = time.time()
        async with self._transaction():
            changed = await self._update(ref, state, expect, columns, now)
            if changed:
                await self._event(ref, event, actor, detail or {}, now)
        return changed

    async def activate(self, ref: ModuleRef, *, actor: str, event: str = "activated") -> bool:
        """Make `ref` the one active version of its name; the one it replaces goes back to approved."""
        now = time.time()
        async with self._transaction():
            changed = await self._update(ref, "active", ("approved", "active"), {"reason": None}, now)
            if changed:
                async with self.db.execute(
                    "SELECT version FROM module_versions WHERE name = ? AND version != ? AND state = 'active'",
                    (ref.name, ref.version),
                ) as cursor:
                    replaced = [row[0] for row in await cursor.fetchall()]
                for version in replaced:
                    await self._update(ModuleRef(ref.name, version), "approved", ("active",), {}, now)
                await self._event(ref, event, actor, {"replaced": replaced}, now)
        return changed

    async def _update(
        self, ref: ModuleRef, state: State | None, expect: Iterable[State] | None, columns: dict[str, Any], now: float
    ) -> bool:
        allowed = {"reason", "manifest", "validation", "pins", "approved_by", "approved_at"}
        unknown = set(columns) - allowed
        if unknown:
            raise ValueError(f"unknown module columns: {sorted(unknown)}")
        sets = ["updated_at = ?"]
        params: list[Any] = [now]
        if state is not None:
            sets.append("state = ?")
            params.append(state)
        for key, value in columns.items():
            sets.append(f"{key} = ?")
            if isinstance(value, Pins):
                value = value.to_json()
            elif isinstance(value, dict):
                value = json.dumps(value)
            params.append(value)
        where = "name = ? AND version = ?"
        params += [ref.name, ref.version]
        if expect is not None:
            allowed_states = tuple(expect)
            where += f" AND state IN ({', '.join('?' for _ in allowed_states)})"
            params += list(allowed_states)
        cursor = await self.db.execute(f"UPDATE module_versions SET {', '.join(sets)} WHERE {where}", params)  # noqa: S608
        return cursor.rowcount > 0

    async def _event(self, ref: ModuleRef, event: str, actor: str, detail: dict[str, Any], now: float) -> None:
        await self.db.execute(
            "INSERT INTO module_events (at, name, version, event, actor, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (now, ref.name, ref.version, event, actor[:128], json.dumps(detail) if detail else None),
        )
