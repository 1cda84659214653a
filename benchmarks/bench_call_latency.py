"""tools/call latency: toolkiln's full pipeline beside the SDK's plain `MCPServer`, same run.

Both servers serve the same trivial `echo` tool (see `latency_servers.py`) and are driven by the Python
SDK `Client`, one call at a time, over stdio and Streamable HTTP. All four servers stay up for the
whole run; toolkiln and plain take turns call by call (who goes first flips every round), so
background noise (two cores shared with whatever else runs) lands on both sides alike. Each side
is warmed up before any sample is kept.

    python benchmarks/bench_call_latency.py [--rounds 30] [--calls 50] [--warmup 300]

Prints a table and the toolkiln/plain ratio per transport, and writes the samples' summary to
benchmarks/results/call_latency-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "latency_servers.py"
RESULTS = HERE / "results"
KINDS = ("toolkiln", "plain")
TARGET_RATIO = 1.2
PAYLOAD = {"text": "hello, toolkiln"}


@dataclass
class Samples:
    """Latencies of one (server, transport) pair, in milliseconds, plus each round's median."""

    all_ms: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 4),
        "p99_ms": round(_percentile(ordered, 0.99), 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
        "min_ms": round(ordered[0], 4),
        "max_ms": round(ordered[-1], 4),
    }


def _percentile(ordered: list[float], q: float) -> float:
    # Nearest-rank: the smallest sample with at least q of the samples at or below it.
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_command(kind: str, transport: str, *extra: str) -> list[str]:
    return [sys.executable, str(SERVERS), kind, "--transport", transport, *extra]


# Set from --toolkiln-config: a diagnostic run with some other configuration (the headline
# numbers use the defaults, i.e. the full pipeline with the audit log on).
TOOLKILN_CONFIG: Path | None = None


def _toolkiln_options(data_dir: Path) -> list[str]:
    options = ["--data-dir", str(data_dir)]
    if TOOLKILN_CONFIG is not None:
        options += ["--config", str(TOOLKILN_CONFIG)]
    return options


@contextmanager
def http_server(kind: str, log: TextIO, data_dir: Path) -> Iterator[str]:
    """Start one Streamable HTTP server on a free loopback port; yield its MCP URL once it answers."""
    port = _free_port()
    extra = ["--port", str(port)]
    if kind == "toolkiln":
        extra += _toolkiln_options(data_dir)
    process = subprocess.Popen(
        _server_command(kind, "http", *extra), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        _wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            # Any HTTP answer means uvicorn is accepting; the path does not matter.
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} never started listening")


@asynccontextmanager
async def connect(
    kind: str, transport: str, url: str | None, log: TextIO, data_dir: Path, mode: str
) -> AsyncIterator[Client]:
    if transport == "http":
        assert url is not None
        client = Client(url, mode=mode)
    else:
        extra = _toolkiln_options(data_dir) if kind == "toolkiln" else []
        command = _server_command(kind, "stdio", *extra)
        params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
        client = Client(stdio_client(params, errlog=log), mode=mode)
    async with client:
        yield client


async def call_once(client: Client) -> float:
    started = time.perf_counter_ns()
    result = await client.call_tool("echo", PAYLOAD)
    elapsed = (time.perf_counter_ns() - started) / 1e6
    if not isinstance(result, types.CallToolResult) or result.is_error:
        raise RuntimeError(f"unexpected result: {result!r}")
    return elapsed


async def check_same_answer(clients: dict[tuple[str, str], Client]) -> None:
    """Both servers must do the same work: the same single text block back."""
    for key, client in clients.items():
        result = await client.call_tool("echo", PAYLOAD)
        assert isinstance(result, types.CallToolResult), key
        blocks = [(b.type, getattr(b, "text", None)) for b in result.content]
        if blocks != [("text", PAYLOAD["text"])] or result.is_error:
            raise RuntimeError(f"{key}: unexpected answer {result!r}")


async def measure(args: argparse.Namespace, log: TextIO, data_root: Path) -> dict[str, Any]:
    transports: list[str] = args.transports
    samples = {(kind, t): Samples() for kind in KINDS for t in transports}
    with ExitStack() as stack:
        urls: dict[tuple[str, str], str | None] = {}
        for kind in KINDS:
            for transport in transports:
                data_dir = data_root / f"{kind}-{transport}"
                url = stack.enter_context(http_server(kind, log, data_dir)) if transport == "http" else None
                urls[(kind, transport)] = url
        async with AsyncExitStack() as astack:
            clients: dict[tuple[str, str], Client] = {}
            protocols: dict[str, str] = {}
            for (kind, transport), url in urls.items():
                data_dir = data_root / f"{kind}-{transport}-stdio"
                client = await astack.enter_async_context(connect(kind, transport, url, log, data_dir, args.mode))
                clients[(kind, transport)] = client
                protocols[f"{kind}/{transport}"] = client.protocol_version
            await check_same_answer(clients)
            for client in clients.values():
                for _ in range(args.warmup):
                    await call_once(client)
            for round_no in range(args.rounds):
                # Call by call, toolkiln and plain take turns (who goes first flips each round),
                # so a burst of load from elsewhere lands on both sides, not on one block.
                order = KINDS if round_no % 2 == 0 else tuple(reversed(KINDS))
                for transport in transports:
                    taken: dict[str, list[float]] = {kind: [] for kind in KINDS}
                    for _ in range(args.calls):
                        for kind in order:
                            taken[kind].append(await call_once(clients[(kind, transport)]))
                    for kind in KINDS:
                        bucket = samples[(kind, transport)]
                        bucket.all_ms.extend(taken[kind])
                        bucket.round_medians.append(statistics.median(taken[kind]))
    return {"samples": samples, "protocols": protocols}


def report(
    args: argparse.Namespace, measured: dict[str, Any], load: tuple[tuple[float, ...], tuple[float, ...]]
) -> dict[str, Any]:
    samples: dict[tuple[str, str], Samples] = measured["samples"]
    per_transport: dict[str, Any] = {}
    for transport in args.transports:
        tk = samples[("toolkiln", transport)]
        plain = samples[("plain", transport)]
        tk_sum, plain_sum = summarize(tk.all_ms), summarize(plain.all_ms)
        round_ratios = [a / b for a, b in zip(tk.round_medians, plain.round_medians, strict=True)]
        per_transport[transport] = {
            "toolkiln": tk_sum,
            "plain": plain_sum,
            "ratio_median": round(tk_sum["median_ms"] / plain_sum["median_ms"], 3),
            "ratio_p99": round(tk_sum["p99_ms"] / plain_sum["p99_ms"], 3),
            "round_ratio_median": round(statistics.median(round_ratios), 3),
            "round_ratio_min": round(min(round_ratios), 3),
            "round_ratio_max": round(max(round_ratios), 3),
        }
    return {
        "benchmark": "tools/call latency, trivial echo tool, sequential calls, Python SDK Client",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "target_ratio": TARGET_RATIO,
        "parameters": {"rounds": args.rounds, "calls_per_round": args.calls, "warmup": args.warmup, "mode": args.mode},
        "toolkiln_config": None if TOOLKILN_CONFIG is None else TOOLKILN_CONFIG.read_text(encoding="utf-8"),
        "protocol_versions": measured["protocols"],
        "environment": {
            "python": platform.python_version(),
            "mcp": version("mcp"),
            "toolkiln": version("toolkiln"),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load[0],
            "loadavg_after": load[1],
        },
        "transports": per_transport,
    }


def print_table(result: dict[str, Any]) -> None:
    header = f"{'transport':<10} {'server':<9} {'median ms':>10} {'p99 ms':>9} {'mean ms':>9} {'n':>6}"
    print(header)
    print("-" * len(header))
    for transport, row in result["transports"].items():
        for kind in KINDS:
            s = row[kind]
            stats = f"{s['median_ms']:>10.3f} {s['p99_ms']:>9.3f} {s['mean_ms']:>9.3f} {s['n']:>6}"
            print(f"{transport:<10} {kind:<9} {stats}")
    print()
    for transport, row in result["transports"].items():
        verdict = "within" if row["ratio_median"] <= TARGET_RATIO else "ABOVE"
        print(
            f"{transport}: toolkiln/plain median {row['ratio_median']:.3f}× p99 {row['ratio_p99']:.3f}× "
            f"(per-round median ratio {row['round_ratio_min']:.3f}–{row['round_ratio_max']:.3f}) "
            f"{verdict} the {TARGET_RATIO}× target"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per transport (default 30)")
    parser.add_argument("--calls", type=int, default=50, help="sequential calls per server per round (default 50)")
    parser.add_argument("--warmup", type=int, default=300, help="calls per server before sampling (default 300)")
    parser.add_argument(
        "--transports", type=lambda v: v.split(","), default=["stdio", "http"], help="comma list (default stdio,http)"
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "legacy"),
        default="auto",
        help="client protocol negotiation: auto lands on 2026-07-28, legacy uses the initialize handshake",
    )
    parser.add_argument("--out", type=Path, help="result file (default benchmarks/results/call_latency-<time>.json)")
    parser.add_argument(
        "--toolkiln-config",
        type=Path,
        help="diagnostics only: serve toolkiln with this config file instead of the defaults",
    )
    parser.add_argument("--server-log", type=Path, help="append the servers' stderr here (default: discarded)")
    args = parser.parse_args()
    for transport in args.transports:
        if transport not in ("stdio", "http"):
            parser.error(f"unknown transport {transport!r}")
    global TOOLKILN_CONFIG
    TOOLKILN_CONFIG = args.toolkiln_config.resolve() if args.toolkiln_config else None

    load_before = os.getloadavg()
    log_path = args.server_log or Path(os.devnull)
    with log_path.open("a", encoding="utf-8") as log, tempfile.TemporaryDirectory(prefix="toolkiln-bench-") as tmp:
        measured = anyio.run(measure, args, log, Path(tmp))
    result = report(args, measured, (load_before, os.getloadavg()))
    print_table(result)
    out = args.out or RESULTS / f"call_latency-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
