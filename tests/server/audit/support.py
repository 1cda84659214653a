"""A runtime with the policy chain configured by the test, driven in process or by the SDK client."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from server.config import Settings
from server.runtime import Runtime
from tools.model import CallContext, Principal, Tool, ToolOutcome, ToolResult

__all__ = ["Barrier", "call", "chain_rows", "make_runtime", "records", "settings_for", "text_of"]

SOURCE = "test"


def settings_for(data_dir: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {"server": {"data_dir": str(data_dir)}}
    data.update(sections)
    return Settings.model_validate(data)


def make_runtime(data_dir: Path, tools: Sequence[Tool], **sections: Any) -> Runtime:
    runtime = Runtime(settings_for(data_dir, **sections))
    runtime.registry.replace_source(SOURCE, list(tools))
    return runtime


async def call(
    runtime: Runtime,
    name: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    principal: str = "alice",
    roles: tuple[str, ...] = ("admin",),
    meta: Mapping[str, Any] | None = None,
) -> ToolOutcome:
    context = CallContext(principal=Principal(id=principal, roles=roles))
    if meta is not None:
        context.extras["meta"] = dict(meta)
    return await runtime.pipeline.call_tool(name, dict(arguments or {}), context)


def text_of(outcome: ToolOutcome) -> str:
    assert isinstance(outcome, ToolResult)
    return "".join(getattr(block, "text", "") for block in outcome.content)


def records(db: Path) -> list[dict[str, Any]]:
    """Every audit record's body, in seq order."""
    conn = sqlite3.connect(db)
    try:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM audit_records ORDER BY seq")]
    finally:
        conn.close()


def chain_rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT seq, prev_hash, hash FROM audit_records ORDER BY seq").fetchall()
    finally:
        conn.close()


class Barrier:
    """Releases every waiter at once when the last of `parties` arrives (no sleeps)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.released = anyio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.released.set()
        await self.released.wait()
