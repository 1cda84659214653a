"""Module workers: cold start to ready, and the per-call overhead of a sandboxed tool.

1. Cold start: `start_worker` for a small module (spawn, uid switch, namespaces, confinement,
   import, tool enumeration, the `ready` frame), repeated; target: median < 300 ms.
2. Per-call overhead: the same `add` tool called through `Worker.call` (one frame each way over
   the worker's socket) against the same function awaited in process, alternating call by call so
   background load lands on both. Target: median added < 2 ms.

Runs in the strongest tier the host offers (`--tier fallback` to measure the other).

    python benchmarks/bench_modules.py [--starts 20] [--calls 2000] [--tier full|fallback]

Prints a summary and writes it to benchmarks/results/modules-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from modules.sandbox import WorkerSpec, sandbox_report, start_worker  # noqa: E402

MODULE = """
from toolkiln_module import tool

@tool(description="Add two integers")
def add(a: int, b: int) -> dict:
    return {"sum": a + b}
"""


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


async def in_process(arguments: dict[str, Any]) -> dict[str, int]:
    return add(**arguments)


def ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def run(starts: int, calls: int, tier: str | None) -> dict[str, Any]:
    report = sandbox_report()
    if tier is not None:
        report = dataclasses.replace(report, tier=tier)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        module_dir = Path(tmp) / "bench"
        module_dir.mkdir(mode=0o755)
        module_dir.chmod(0o755)  # the worker runs as another uid; only the directory itself must be readable
        (module_dir / "adapter.py").write_text(MODULE)
        spec = WorkerSpec(name="bench", version="1", module_dir=module_dir, entry="adapter.py")
        # One start first to warm the page cache, then the measured cold starts.
        await (await start_worker(spec, report=report)).stop()
        cold: list[float] = []
        for _ in range(starts):
            begun = time.perf_counter()
            worker = await start_worker(spec, report=report)
            cold.append(time.perf_counter() - begun)
            await worker.stop()
        worker = await start_worker(spec, report=report)
        try:
            sandboxed: list[float] = []
            local: list[float] = []
            for i in range(calls // 10):  # warm-up
                await worker.call("add", {"a": i, "b": 1})
            for i in range(calls):
                arguments = {"a": i, "b": 2}
                pair = [("worker", worker.call("add", arguments)), ("local", in_process(arguments))]
                for side, awaitable in pair if i % 2 == 0 else reversed(pair):
                    begun = time.perf_counter()
                    await awaitable
                    (sandboxed if side == "worker" else local).append(time.perf_counter() - begun)
        finally:
            await worker.stop()
    added = statistics.median(sandboxed) - statistics.median(local)
    return {
        "tier": report.tier,
        "landlock_abi": report.landlock_abi,
        "cold_start": {"starts": starts, **ms(cold), "target_median_ms": 300},
        "call": {
            "calls": calls,
            "worker": ms(sandboxed),
            "in_process": ms(local),
            "added_median_ms": round(added * 1000, 3),
            "target_added_median_ms": 2,
        },
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--tier", choices=["full", "fallback"], default=None)
    args = parser.parse_args()
    result = asyncio.run(run(args.starts, args.calls, args.tier))
    cold, call = result["cold_start"], result["call"]
    print(f"module sandbox tier: {result['tier']} (Landlock ABI {result['landlock_abi']})")
    print(f"cold start to ready: median {cold['median_ms']} ms, p90 {cold['p90_ms']} ms (target < 300 ms)")
    print(
        f"per call: worker median {call['worker']['median_ms']} ms, in process {call['in_process']['median_ms']} ms,"
        f" added {call['added_median_ms']} ms (target < 2 ms)"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = HERE / "results" / f"modules-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
