"""tools/call cost of the whole policy chain, against the chain off, in the same run.

Chain on: a `Runtime` with a 50-rule policy (conditions on the arguments), a rate limit and a
daily cost quota on the SQLite backend, and the durable audit log (intent + outcome, hash chain,
group commit) in a fresh data directory. Chain off: the bare pipeline (log, resolve, validate,
deadline, execute) over the same registry and tool. Both are driven in process through
`Pipeline.call_tool`, so the difference is exactly the chain.

1. Latency: one call at a time; rounds alternate which side goes first so background noise (two
   cores shared with everything else) lands on both alike. Target: median added < 1 ms.
2. Throughput: 50 concurrent callers for a fixed number of calls through the chain; target
   >= 2,000 audited calls/s. The audit chain is verified afterwards.

    python benchmarks/bench_policy_chain.py [--rounds 20] [--calls 100] [--throughput-calls 20000]
                                            [--synchronous normal|full]

Prints a summary and writes it to benchmarks/results/policy_chain-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from server.audit.ledger import LedgerPaths  # noqa: E402
from server.audit.verify import verify_chain  # noqa: E402
from server.config import Settings  # noqa: E402
from server.logs import configure_logging  # noqa: E402
from server.pipeline import Pipeline, build_pipeline  # noqa: E402
from server.runtime import Runtime  # noqa: E402
from tools.model import CallContext, Principal, Tool, ToolAnnotations, ToolResult  # noqa: E402
from tools.registry import ToolRegistry  # noqa: E402

RESULTS = HERE / "results"
TARGET_ADDED_MS = 1.0
TARGET_CALLS_PER_S = 2000.0
CONCURRENCY = 50
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"account": {"type": "string"}, "amount": {"type": "number"}, "note": {"type": "string"}},
    "required": ["account", "amount"],
}
ARGUMENTS = {"account": "acct-7", "amount": 12.5, "note": "benchmark"}


async def _transfer(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text(f"moved {arguments['amount']} from {arguments['account']}")


def _tool() -> Tool:
    return Tool(
        name="payments.transfer",
        description="move money",
        input_schema=SCHEMA,
        executor=_transfer,
        source="bench",
        annotations=ToolAnnotations(read_only=False, destructive=False),
        cost=1,
    )


def _policy() -> dict[str, Any]:
    """50 rules: 47 allows for other tools, 2 conditional denies and the allow that decides."""
    rules: list[dict[str, Any]] = [
        {"id": f"svc-{i}", "roles": ["bench"], "tools": [f"svc{i}.*"], "when": {"arg": "amount", "range": {"max": i}}}
        for i in range(47)
    ]
    rules.append(
        {"id": "no-frozen", "effect": "deny", "roles": ["bench"], "when": {"arg": "account", "in": ["frozen-1"]}}
    )
    rules.append(
        {"id": "no-huge", "effect": "deny", "roles": ["bench"], "when": {"arg": "amount", "range": {"min": 1e6}}}
    )
    rules.append(
        {
            "id": "payments",
            "roles": ["bench"],
            "tools": ["payments.*"],
            "when": {"all": [{"arg": "account", "matches": "acct-[0-9]+"}, {"arg": "amount", "range": {"max": 1e5}}]},
        }
    )
    return {"roles": {"bench": {"description": "benchmark caller"}}, "rules": rules}


def chain_on(data_dir: Path, synchronous: str = "normal") -> Runtime:
    settings = Settings.model_validate(
        {
            "server": {"data_dir": str(data_dir)},
            "policy": _policy(),
            "limits": {"backend": "sqlite", "rules": [{"name": "per-caller", "limit": 1_000_000, "period_s": 1}]},
            "quotas": {"backend": "sqlite", "daily": 1e9, "monthly": 1e10},
            "audit": {"enabled": True, "synchronous": synchronous},
        }
    )
    runtime = Runtime(settings)
    runtime.registry.replace_source("bench", [_tool()])
    return runtime


def chain_off() -> Pipeline:
    registry = ToolRegistry()
    registry.replace_source("bench", [_tool()])
    return build_pipeline(registry, call_timeout_s=60)


def _context() -> CallContext:
    return CallContext(principal=Principal(id="bench-caller", roles=("bench",)))


async def _one(pipeline: Pipeline) -> float:
    started = time.perf_counter()
    result = await pipeline.call_tool("payments.transfer", dict(ARGUMENTS), _context())
    elapsed = time.perf_counter() - started
    if not isinstance(result, ToolResult) or result.is_error:
        raise SystemExit(f"benchmark call failed: {result!r}")
    return elapsed * 1000


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 4),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
    }


async def measure_latency(on: Pipeline, off: Pipeline, rounds: int, calls: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        await _one(on)
        await _one(off)
    samples: dict[str, list[float]] = {"on": [], "off": []}
    round_added: list[float] = []
    for index in range(rounds):
        order = [("on", on), ("off", off)] if index % 2 == 0 else [("off", off), ("on", on)]
        medians: dict[str, float] = {}
        for side, pipeline in order:
            values = [await _one(pipeline) for _ in range(calls)]
            samples[side].extend(values)
            medians[side] = statistics.median(values)
        round_added.append(medians["on"] - medians["off"])
    on_summary, off_summary = _summary(samples["on"]), _summary(samples["off"])
    return {
        "chain_on": on_summary,
        "chain_off": off_summary,
        "added_median_ms": round(on_summary["median_ms"] - off_summary["median_ms"], 4),
        "added_median_of_round_medians_ms": round(statistics.median(round_added), 4),
    }


async def measure_throughput(pipeline: Pipeline, total: int, concurrency: int) -> dict[str, Any]:
    remaining = total
    latencies: list[float] = []

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latencies.append(await _one(pipeline))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "calls": total,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "calls_per_s": round(total / elapsed, 1),
        "latency": _summary(latencies),
    }


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    runtime = chain_on(data_dir, args.synchronous)
    off = chain_off()
    async with runtime.running():
        latency = await measure_latency(runtime.pipeline, off, args.rounds, args.calls, args.warmup)
        baseline = await measure_throughput(off, args.throughput_calls, CONCURRENCY)
        throughput = await measure_throughput(runtime.pipeline, args.throughput_calls, CONCURRENCY)
        writer = runtime.ledger.writer
        batches = writer.batches if writer is not None else 0
        operations = writer.operations if writer is not None else 0
    paths = LedgerPaths.from_settings(runtime.settings)
    report = verify_chain(paths.db, paths.key, paths.head)
    return {
        "latency": latency,
        "throughput_chain_on": throughput,
        "throughput_chain_off": baseline,
        "group_commit": {
            "batches": batches,
            "operations": operations,
            "operations_per_batch": round(operations / batches, 1) if batches else 0,
        },
        "audit_synchronous": args.synchronous,
        "audit_verify": report.summary(),
        "audit_records": report.records,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=100, help="calls per side per round")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--throughput-calls", type=int, default=20_000)
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal", help="the audit's SQLite mode")
    args = parser.parse_args()
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix="toolkiln-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    added = results["latency"]["added_median_ms"]
    rate = results["throughput_chain_on"]["calls_per_s"]
    results["targets"] = {
        "added_median_ms": {"target": TARGET_ADDED_MS, "measured": added, "met": added < TARGET_ADDED_MS},
        "calls_per_s": {"target": TARGET_CALLS_PER_S, "measured": rate, "met": rate >= TARGET_CALLS_PER_S},
    }
    results["environment"] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    lat = results["latency"]
    print(
        f"latency  chain off median {lat['chain_off']['median_ms']:.3f} ms, "
        f"chain on median {lat['chain_on']['median_ms']:.3f} ms "
        f"(p99 {lat['chain_on']['p99_ms']:.3f} ms): added {added:.3f} ms (target < {TARGET_ADDED_MS} ms)"
    )
    print(
        f"throughput  {rate:.0f} audited calls/s with {CONCURRENCY} concurrent callers "
        f"(chain off: {results['throughput_chain_off']['calls_per_s']:.0f}/s; target >= {TARGET_CALLS_PER_S:.0f}/s); "
        f"{results['group_commit']['operations_per_batch']} writes per commit"
    )
    print(results["audit_verify"])
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"policy_chain-{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(HERE.parent)}")
    met = all(target["met"] for target in results["targets"].values())
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
