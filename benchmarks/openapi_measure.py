"""Measuring tools shared by the OpenAPI benchmark: stdio servers, their pid and peak RSS, statistics.

A server runs as a child of the benchmark, started by the SDK's `stdio_client`; its pid is found
as the new child that appeared while the client connected (the benchmark's other children, such
as the upstream, were there before), so peak RSS (VmHWM) is read from the server process itself.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
from anyio.abc import Process
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

__all__ = [
    "RawSession",
    "StdioServer",
    "children",
    "cpu_seconds",
    "list_all_tools",
    "peak_rss_bytes",
    "percentile",
    "raw_cold_list",
    "raw_session",
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


@dataclass
class RawList:
    elapsed_s: float
    peak_rss_bytes: int | None
    tools: int
    wire_bytes: int
    pages: int
    protocol: str


async def raw_cold_list(argv: Sequence[str], errlog: TextIO, env: dict[str, str] | None = None) -> RawList:
    """Process start to the last byte of the last `tools/list` page, read straight off the server's stdout.

    A minimal handshake-era stdio client: `initialize`, `notifications/initialized`, then `tools/list`
    page by page. The clock stops when a page's line has arrived; parsing it comes after. The SDK
    `Client` instead validates every page into models, which for a list of 100+ MB costs the client
    minutes, a cost of the client and not of the server being measured. `wire_bytes` is exact.

    Raises:
        RuntimeError: the server closed its stdout or answered with an error.
    """
    started = time.perf_counter()
    process = await anyio.open_process(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, env=env or dict(os.environ)
    )
    try:
        reader = _LineReader(process)
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
        await _send(process, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
        answer = json.loads(await reader.response(1))
        protocol = str(answer.get("result", {}).get("protocolVersion"))
        await _send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        pages_raw: list[bytes] = []
        cursor: str | None = None
        request_id = 2
        while True:
            params = {} if cursor is None else {"cursor": cursor}
            await _send(process, {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": params})
            line = await reader.response(request_id)
            pages_raw.append(line)
            # Only the cursor is needed before the clock stops; a page without one is the last.
            cursor = _next_cursor(line) if b'"nextCursor"' in line else None
            if cursor is None:
                break
            request_id += 1
        elapsed = time.perf_counter() - started
        rss = peak_rss_bytes(process.pid)
        tools = sum(len(json.loads(page)["result"]["tools"]) for page in pages_raw)
        return RawList(elapsed, rss, tools, sum(len(p) for p in pages_raw), len(pages_raw), protocol)
    finally:
        await _stop(process)


# The protocol the SDK `Client` lands on with every server of the benchmark, and the `_meta` it sends
# with each request there (2026-07-28 has no handshake: each request says who and what it is).
MODERN_PROTOCOL = "2026-07-28"
_REQUEST_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class RawSession:
    """Requests to a stdio server, one at a time, answered as the raw line off its stdout (not parsed)."""

    def __init__(self, process: Process) -> None:
        self._process = process
        self._reader = _LineReader(process)
        self._last_id = 0

    async def request(self, method: str, params: dict[str, Any]) -> bytes:
        """Send one request and return its response line once its last byte has arrived.

        Raises:
            RuntimeError: the server closed its stdout or answered with a JSON-RPC error.
        """
        self._last_id += 1
        message = {
            "jsonrpc": "2.0",
            "id": self._last_id,
            "method": method,
            "params": {**params, "_meta": _REQUEST_META},
        }
        await _send(self._process, message)
        return await self._reader.response(self._last_id)


@asynccontextmanager
async def raw_session(
    argv: Sequence[str], errlog: TextIO, env: dict[str, str] | None = None
) -> AsyncIterator[RawSession]:
    """Start `argv` as a stdio MCP server and talk 2026-07-28 JSON-RPC to it with no SDK client in between.

    The requests are the ones the SDK `Client` sends (`server/discover`, then each request with its
    `_meta`), but a response is handed back as the line it arrived as: timing `request` gives the
    server's and the pipe's part of a call, without the client's parsing and validation. The server
    starts in a session of its own, as the SDK's `stdio_client` starts it (with the kernel's
    autogroup scheduling, the session decides whose CPU share a process draws on).

    Raises:
        RuntimeError: the server does not speak 2026-07-28 or closed its stdout.
    """
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=env or dict(os.environ),
        start_new_session=True,
    )
    try:
        session = RawSession(process)
        discovered = json.loads(await session.request("server/discover", {}))
        versions = discovered.get("result", {}).get("supportedVersions", [])
        if MODERN_PROTOCOL not in versions:
            raise RuntimeError(f"{argv[0]}: no {MODERN_PROTOCOL} among {versions}")
        yield session
    finally:
        await _stop(process)


async def _send(process: Process, message: dict[str, Any]) -> None:
    assert process.stdin is not None
    await process.stdin.send(json.dumps(message).encode() + b"\n")


def _next_cursor(line: bytes) -> str | None:
    result = json.loads(line)["result"]
    cursor = result.get("nextCursor")
    return str(cursor) if cursor else None


class _LineReader:
    """Newline-delimited JSON-RPC off a process's stdout; only new bytes are searched for the newline."""

    def __init__(self, process: Process) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout
        self._buffer = bytearray()

    async def _line(self) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            start = len(self._buffer)
            try:
                self._buffer += await self._stdout.receive(1 << 20)
            except anyio.EndOfStream:
                raise RuntimeError("the server closed its stdout") from None

    async def response(self, request_id: int) -> bytes:
        """The line answering `request_id` (notifications and server requests in between are skipped)."""
        marker = f'"id":{request_id}'.encode(), f'"id": {request_id}'.encode()
        while True:
            line = await self._line()
            if any(m in line[:200] or m in line[-200:] for m in marker):
                if b'"error"' in line[:200] and b'"result"' not in line[:200]:
                    raise RuntimeError(f"error response: {line[:300]!r}")
                return line


async def _stop(process: Process) -> None:
    with anyio.CancelScope(shield=True):
        if process.stdin is not None:
            await process.stdin.aclose()
        with anyio.move_on_after(5):
            await process.wait()
            return
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
            return
        process.kill()
        await process.wait()
