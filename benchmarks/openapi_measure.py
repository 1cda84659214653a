"""Measuring tools shared by the OpenAPI benchmark: stdio servers, their pid and peak RSS, statistics.

A server runs as a child of the benchmark, started by the SDK's `stdio_client`; its pid is found
as the new child that appeared while the client connected (the benchmark's other children, such
as the upstream, were there before), so peak RSS (VmHWM) is read from the server process itself.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

__all__ = [
    "StdioServer",
    "children",
    "cpu_seconds",
    "list_all_tools",
    "peak_rss_bytes",
    "percentile",
    "stdio_server",
    "summarize_ms",
]


@dataclass
class StdioServer:
    """A connected client, the server's pid (None if it could not be identified) and its start time."""

    client: Client
    pid: int | None
    started: float


def children() -> set[int]:
    """The pids of this process's live children."""
    me = os.getpid()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses; the parent pid follows the last ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry.name))
    return found


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM (peak resident set size) of a live process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far (all its threads), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name: state is [0], utime [11] and stime [12], in clock ticks.
    fields = stat.rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def stdio_server(
    argv: Sequence[str], errlog: TextIO, env: dict[str, str] | None = None
) -> AsyncIterator[StdioServer]:
    """Start `argv` as a stdio MCP server and connect the Python SDK `Client` to it.

    `started` is taken just before the process is spawned, so `perf_counter() - started` after a
    request is "process start to that result". The client's response cache is off: every
    `tools/list` reaches the server.
    """
    params = StdioServerParameters(command=argv[0], args=list(argv[1:]), env=env or dict(os.environ))
    before = children()
    started = time.perf_counter()
    async with Client(stdio_client(params, errlog=errlog), cache=None) as client:
        new = children() - before
        pid = next(iter(new)) if len(new) == 1 else None
        yield StdioServer(client=client, pid=pid, started=started)


async def list_all_tools(client: Client) -> tuple[int, int, int]:
    """Every page of `tools/list`: (tool count, serialized result bytes summed over pages, pages)."""
    cursor: str | None = None
    tools = size = pages = 0
    while True:
        page = await client.list_tools(cursor=cursor)
        pages += 1
        tools += len(page.tools)
        # The result as it travels (camelCase, no nulls); the JSON-RPC envelope adds a few dozen bytes.
        size += len(page.model_dump_json(by_alias=True, exclude_none=True).encode())
        cursor = page.next_cursor
        if cursor is None:
            return tools, size, pages


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least q of the samples at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


def summarize_ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 4),
        "p99_ms": round(percentile(values, 0.99), 4),
        "mean_ms": round(statistics.fmean(values), 4),
        "min_ms": round(min(values), 4),
        "max_ms": round(max(values), 4),
    }
