"""`tools/call` latency and throughput through toolkiln and FastMCP over stdio, beside their floor and bounds.

One local upstream (`openapi_upstream.py`) serves both servers, each built from
`openapi_upstream_spec.json`. The floor is measured in the same run: a reused `httpx.AsyncClient`
calling the upstream directly, and the SDK's plain `MCPServer` answering a trivial `echo` tool over
stdio (`latency_servers.py plain`) — an OpenAPI tool call cannot cost less than one HTTP request
plus one MCP stdio round trip. The ideal server (`latency_servers.py ideal`) answers the same
calls from memory with the same results and the `outputSchema`s toolkiln lists: through the same
client, no server listing those schemas can be faster. The `*_raw` sides are second processes of
toolkiln, FastMCP and the ideal server driven by a minimal JSON-RPC client (`openapi_measure.raw_session`)
whose clock stops at a response's last byte: the servers' and the pipe's part alone. Sequential
samples are taken call by call in turn, in a random order drawn anew every pass, so load from
other processes and whatever one call leaves for the next land on every side alike.
"""

from __future__ import annotations

import json
import random
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
from openapi_measure import (
    RawSession,
    StdioServer,
    cpu_seconds,
    peak_rss_bytes,
    raw_session,
    stdio_server,
    summarize_ms,
)

__all__ = ["measure_calls"]

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "openapi_upstream.py"
SPEC = HERE / "openapi_upstream_spec.json"
PLAIN = HERE / "latency_servers.py"
SERVERS = ("toolkiln", "fastmcp")
# Measured through the SDK client (as is, and as `*_wire`) and through the raw client (`*_raw`).
CALLED = (*SERVERS, "ideal")
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


def _output_schema(tools: list[types.Tool], name: str) -> dict[str, Any]:
    schema = next(t.output_schema for t in tools if t.name == name)
    if schema is None:
        raise RuntimeError(f"{name} lists no outputSchema")
    return schema


def ideal_argv(output_schemas: Path) -> list[str]:
    return [sys.executable, str(PLAIN), "ideal", "--transport", "stdio", "--output-schemas", str(output_schemas)]


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


def _raw_call(session: RawSession, tool: str, arguments: dict[str, Any]) -> Call:
    """The same request through the raw client: done when the response's last byte is in."""
    params = {"name": tool, "arguments": arguments}

    async def call() -> int:
        line = await session.request("tools/call", params)
        # A byte search, not a parse: a few microseconds on 100 KB.
        if b'"isError":true' in line:
            raise RuntimeError(f"{tool} failed: {line[:500]!r}")
        return len(line)

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
    """`samples` timed calls per side, one side after another, in a new random order every `per_round` passes.

    A call's time depends on the call before it (what that one left for the client or the machine
    to do, or a server process it has just woken): in fixed orders, the side a small call came
    after moved its median by 0.1-1.3 ms. A fixed order, even rotated (which keeps every side's
    neighbours), gives each side the same neighbour throughout; shuffling gives every side all of them.
    """
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            await calls[name]()
    taken: dict[str, list[float]] = {name: [] for name in names}
    shuffler = random.Random(0)  # the same sequence of orders in every run
    order = list(names)
    while len(taken[names[0]]) < samples:
        shuffler.shuffle(order)
        for _ in range(min(per_round, samples - len(taken[names[0]]))):
            for name in order:
                taken[name].append(await _timed(calls[name]))
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
            # The raw client's toolkiln gets its own data dir: two processes never share an audit log here.
            raw_config = write_toolkiln_config(Path(tmp) / "raw", SPEC, base_url, allow_loopback=True)
            return await _measure(args, log, base_url, (config, raw_config), Path(tmp) / "ideal-schemas.json")
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)


Sides = dict[str, dict[str, Call]]  # response size -> side -> call
Answers = dict[str, dict[str, int]]  # response size -> side -> result bytes


def _ideal_schemas(toolkiln_tools: list[types.Tool]) -> dict[str, dict[str, Any]]:
    """The outputSchema per operation id, as toolkiln lists it: what the ideal server lists."""
    return {op: _output_schema(toolkiln_tools, _tool_for(toolkiln_tools, op)) for op, _ in OPERATIONS.values()}


async def _sdk_sides(
    servers: dict[str, StdioServer], tool_names: dict[str, dict[str, str]], calls: Sides, answers: Answers
) -> dict[str, dict[str, types.CallToolResult]]:
    """Each server's calls as is and as `*_wire`; returns each one's first answers."""
    first: dict[str, dict[str, types.CallToolResult]] = {name: {} for name in tool_names}
    for size, (_, argument) in OPERATIONS.items():
        for name, tools in tool_names.items():
            calls[size][name] = _mcp_call(servers[name].client, tools[size], {argument: 7})
            first[name][size] = await servers[name].client.call_tool(tools[size], {argument: 7})
            answers[size][name] = _result_bytes(first[name][size])
        for name, tools in tool_names.items():
            calls[size][f"{name}_wire"] = _wire_call(servers[name].client, tools[size], {argument: 7})
    return first


def _check_ideal(
    ideal_tools: list[types.Tool],
    schemas: dict[str, dict[str, Any]],
    tool_names: dict[str, dict[str, str]],
    first: dict[str, dict[str, types.CallToolResult]],
) -> None:
    """The ideal server must list toolkiln's outputSchemas and answer toolkiln's structuredContent."""
    for size, (operation_id, _) in OPERATIONS.items():
        tool = tool_names["ideal"][size]
        if _output_schema(ideal_tools, tool) != schemas[operation_id]:
            raise RuntimeError(f"the ideal server's {tool} lists another outputSchema than toolkiln's")
        if first["ideal"][size].structured_content != first["toolkiln"][size].structured_content:
            raise RuntimeError(f"the ideal server's {tool} answers other structuredContent than toolkiln's")


async def _raw_sides(
    stack: AsyncExitStack,
    log: TextIO,
    argvs: dict[str, tuple[list[str], dict[str, str] | None]],
    tool_names: dict[str, dict[str, str]],
    calls: Sides,
    answers: Answers,
) -> None:
    """A second process per server, driven by the raw client: the `*_raw` sides."""
    for name, (argv, env) in argvs.items():
        session = await stack.enter_async_context(raw_session(argv, log, env))
        for size, (_, argument) in OPERATIONS.items():
            raw = calls[size][f"{name}_raw"] = _raw_call(session, tool_names[name][size], {argument: 7})
            answers[size][f"{name}_raw"] = await raw()


async def _measure(
    args: Any, log: TextIO, base_url: str, configs: tuple[Path, Path], schemas_file: Path
) -> dict[str, Any]:
    config, raw_config = configs
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=30))
        servers = {
            "toolkiln": await _connect(stack, toolkiln_argv(config), log, toolkiln_env()),
            "fastmcp": await _connect(stack, fastmcp_argv(SPEC, base_url), log),
            "plain": await _connect(stack, [sys.executable, str(PLAIN), "plain", "--transport", "stdio"], log),
        }
        listed = {name: list((await servers[name].client.list_tools()).tools) for name in SERVERS}
        # Taken from this run's toolkiln, so the ideal server lists exactly what toolkiln lists.
        schemas = _ideal_schemas(listed["toolkiln"])
        schemas_file.write_text(json.dumps(schemas), encoding="utf-8")
        servers["ideal"] = await _connect(stack, ideal_argv(schemas_file), log)
        listed["ideal"] = list((await servers["ideal"].client.list_tools()).tools)
        tool_names = {
            name: {size: _tool_for(listed[name], op) for size, (op, _) in OPERATIONS.items()} for name in CALLED
        }

        calls: Sides = {size: {} for size in OPERATIONS}
        answers: Answers = {size: {} for size in OPERATIONS}
        first = await _sdk_sides(servers, tool_names, calls, answers)
        _check_ideal(listed["ideal"], schemas, tool_names, first)
        argvs = {
            "toolkiln": (toolkiln_argv(raw_config), toolkiln_env()),
            "fastmcp": (fastmcp_argv(SPEC, base_url), None),
            "ideal": (ideal_argv(schemas_file), None),
        }
        await _raw_sides(stack, log, argvs, tool_names, calls, answers)
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
