"""`tools/call` latency and throughput through toolkiln and FastMCP over stdio, beside their floor.

One local upstream (`openapi_upstream.py`) serves both servers, each built from
`openapi_upstream_spec.json`. The floor is measured in the same run: a reused `httpx.AsyncClient`
calling the upstream directly, and the SDK's plain `MCPServer` answering a trivial `echo` tool over
stdio (`latency_servers.py plain`) — an OpenAPI tool call cannot cost less than one HTTP request
plus one MCP stdio round trip. Sequential samples are taken call by call in turn, the order
rotating every round, so load from other processes lands on every side alike.
"""

from __future__ import annotations

import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
import mcp_types as types
from mcp import Client
from openapi_coldstart import fastmcp_argv, toolkiln_argv, toolkiln_env, write_toolkiln_config
from openapi_measure import StdioServer, cpu_seconds, peak_rss_bytes, stdio_server, summarize_ms

__all__ = ["measure_calls"]

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "openapi_upstream.py"
SPEC = HERE / "openapi_upstream_spec.json"
PLAIN = HERE / "latency_servers.py"
SERVERS = ("toolkiln", "fastmcp")
OPERATIONS = {"small": ("getItem", "item_id"), "large": ("getReport", "report_id")}

Call = Callable[[], Awaitable[int]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_upstream(log: TextIO) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the upstream exited with {process.returncode}")
        try:
            httpx.get(f"{url}/items/1", timeout=1).raise_for_status()
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the upstream never started listening")


def _tool_for(tools: list[types.Tool], operation_id: str) -> str:
    """The tool a server made of `operation_id` (servers differ in how they case and prefix names)."""
    wanted = re.sub(r"[^a-z0-9]", "", operation_id.lower())
    matches = [t.name for t in tools if re.sub(r"[^a-z0-9]", "", t.name.lower()).endswith(wanted)]
    if len(matches) != 1:
        raise RuntimeError(f"no single tool for {operation_id}: {[t.name for t in tools]}")
    return matches[0]


def _result_bytes(result: types.CallToolResult) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


def _mcp_call(client: Client, tool: str, arguments: dict[str, Any]) -> Call:
    async def call() -> int:
        result = await client.call_tool(tool, arguments)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content!r}"[:500])
        return len(result.content)

    return call


def _wire_call(client: Client, tool: str, arguments: dict[str, Any]) -> Call:
    """The same request without the SDK client's output-schema check: the servers' and the wire's part."""
    request = types.CallToolRequest(params=types.CallToolRequestParams(name=tool, arguments=arguments))

    async def call() -> int:
        result = await client.session.send_request(request, types.CallToolResult)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content!r}"[:500])
        return len(result.content)

    return call


def _direct_call(http: httpx.AsyncClient, path: str) -> Call:
    async def call() -> int:
        response = await http.get(path)
        response.raise_for_status()
        return len(response.json())

    return call


async def _timed(call: Call) -> float:
    started = time.perf_counter_ns()
    await call()
    return (time.perf_counter_ns() - started) / 1e6


async def _sequential(calls: dict[str, Call], samples: int, warmup: int, per_round: int) -> dict[str, list[float]]:
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            await calls[name]()
    taken: dict[str, list[float]] = {name: [] for name in names}
    round_no = 0
    while len(taken[names[0]]) < samples:
        # Rotate who goes first every round.
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for _ in range(min(per_round, samples - len(taken[names[0]]))):
            for name in order:
                taken[name].append(await _timed(calls[name]))
        round_no += 1
    return taken


async def _throughput(call: Call, total: int, concurrency: int) -> float:
    """Calls per second with `concurrency` callers sharing one connection, `total` calls in all."""
    per_worker = total // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return per_worker * concurrency / (time.perf_counter() - started)


async def _connect(
    stack: AsyncExitStack, argv: list[str], errlog: TextIO, env: dict[str, str] | None = None
) -> StdioServer:
    return await stack.enter_async_context(stdio_server(argv, errlog, env))


async def measure_calls(args: Any, log: TextIO) -> dict[str, Any]:
    upstream, base_url = start_upstream(log)
    try:
        with tempfile.TemporaryDirectory(prefix="toolkiln-bench-calls-") as tmp:
            config = write_toolkiln_config(Path(tmp), SPEC, base_url, allow_loopback=True)
            return await _measure(args, log, base_url, config)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)


async def _measure(args: Any, log: TextIO, base_url: str, config: Path) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=30))
        servers = {
            "toolkiln": await _connect(stack, toolkiln_argv(config), log, toolkiln_env()),
            "fastmcp": await _connect(stack, fastmcp_argv(SPEC, base_url), log),
            "plain": await _connect(stack, [sys.executable, str(PLAIN), "plain", "--transport", "stdio"], log),
        }
        calls: dict[str, dict[str, Call]] = {size: {} for size in OPERATIONS}
        answers: dict[str, dict[str, int]] = {size: {} for size in OPERATIONS}
        for name in SERVERS:
            client = servers[name].client
            tools = list((await client.list_tools()).tools)
            for size, (operation_id, argument) in OPERATIONS.items():
                tool = _tool_for(tools, operation_id)
                calls[size][name] = _mcp_call(client, tool, {argument: 7})
                calls[size][f"{name}_wire"] = _wire_call(client, tool, {argument: 7})
                answers[size][name] = _result_bytes(await client.call_tool(tool, {argument: 7}))
        echo = _mcp_call(servers["plain"].client, "echo", {"text": "hello, toolkiln"})
        for size, path in (("small", "/items/7"), ("large", "/reports/7")):
            calls[size]["direct"] = _direct_call(http, path)
            answers[size]["direct"] = len((await http.get(path)).content)
        calls["small"]["plain"] = echo

        latency: dict[str, Any] = {}
        for size in OPERATIONS:
            samples = args.calls if size == "small" else args.large_calls
            taken = await _sequential(calls[size], samples, args.warmup, per_round=args.per_round)
            latency[size] = {name: summarize_ms(values) for name, values in taken.items()}
            latency[size]["result_bytes"] = answers[size]
        floor = latency["small"]["plain"]["median_ms"]
        for size in OPERATIONS:
            latency[size]["floor_median_ms"] = round(latency[size]["direct"]["median_ms"] + floor, 4)

        sides = {**{n: calls["small"][n] for n in SERVERS}, "plain": echo, "direct": calls["small"]["direct"]}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.throughput_rounds):
            for name, call in sides.items():
                pid = servers[name].pid if name in servers else None
                cpu_before = cpu_seconds(pid) if pid is not None else None
                rates[name].append(await _throughput(call, args.throughput_calls, args.concurrency))
                cpu_after = cpu_seconds(pid) if pid is not None else None
                if cpu_before is not None and cpu_after is not None:
                    cpu[name].append((cpu_after - cpu_before) * 1e3 / args.throughput_calls)
        rss = {name: peak_rss_bytes(s.pid) if s.pid is not None else None for name, s in servers.items()}
    throughput: dict[str, Any] = {"concurrency": args.concurrency, "calls_per_round": args.throughput_calls}
    for name, values in rates.items():
        throughput[name] = {
            "calls_per_s": round(statistics.median(values), 1),
            "rounds": [round(x, 1) for x in values],
            # The server process's own CPU per call (all threads), from /proc: what a core buys.
            "server_cpu_ms_per_call": round(statistics.median(cpu[name]), 3) if cpu[name] else None,
        }
    return {
        "latency": latency,
        "throughput": throughput,
        "server_peak_rss_mb": {k: round(v / 1e6, 1) if v else None for k, v in rss.items()},
    }
