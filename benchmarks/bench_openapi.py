"""OpenAPI specs served as MCP tools: toolkiln beside FastMCP's `from_openapi`, same run, as ratios.

1. Every spec of the corpus (default /work/shared/specs, `--specs` filters by name): cold start to
   the first complete `tools/list` over stdio, each run a fresh process (toolkiln with a fresh data
   dir; its warm-cache runs reported apart), peak RSS of the server (VmHWM) and `tools/list` bytes.
2. `tools/call` latency over stdio for a small and a 50 KB JSON response from a local upstream,
   beside the floor (direct `httpx` to the upstream + the plain SDK stdio round trip) and the ideal
   server (the same results from memory, toolkiln's outputSchemas: the lower bound through the same
   client), and through a raw JSON-RPC client (`*_raw`: the servers' and the pipe's part alone).
3. Throughput with 50 concurrent calls on one stdio connection.

    python benchmarks/bench_openapi.py [--specs github,stripe] [--repeats 3] [--skip-calls] ...

Prints a table per part and PASS/FAIL per target, and writes everything to
benchmarks/results/openapi-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
from openapi_calls import measure_calls
from openapi_coldstart import SpecResult, measure_spec, set_toolkiln_src
from openapi_targets import evaluate, print_calls, print_corpus, print_targets

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_CORPUS = Path(os.environ.get("TOOLKILN_SPEC_CORPUS", "/work/shared/specs"))
SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def corpus(folder: Path, filters: list[str]) -> list[Path]:
    specs = sorted((p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES), key=lambda p: p.stat().st_size)
    if filters:
        specs = [p for p in specs if any(f.lower() in p.name.lower() for f in filters)]
    return specs


async def run(args: argparse.Namespace, log_path: Path) -> dict[str, Any]:
    specs: list[dict[str, Any]] = []
    if not args.skip_corpus and not args.corpus.is_dir():
        print(f"cold start: skipped, no spec corpus at {args.corpus} (--corpus DIR)", file=sys.stderr)
    elif not args.skip_corpus:
        found = corpus(args.corpus, args.specs)
        print(f"cold start: {len(found)} specs, {args.repeats} cold runs each", file=sys.stderr)
        for spec in found:
            result: SpecResult = await measure_spec(
                spec, repeats=args.repeats, timeout_s=args.timeout, fastmcp_repeat_under_s=args.fastmcp_repeat_under
            )
            specs.append(result.summary())
    calls: dict[str, Any] | None = None
    if not args.skip_calls:
        print("tools/call latency and throughput", file=sys.stderr)
        with log_path.open("a", encoding="utf-8") as log:
            calls = await measure_calls(args, log)
    return {"specs": specs, "calls": calls}


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _commit(tree: bool) -> str | None:
    """The repository's HEAD; when toolkiln runs from the tree, marked `+dirty` if that has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True)
        status = ["git", "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(status, cwd=HERE, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if tree and dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"spec folder (default {DEFAULT_CORPUS})")
    parser.add_argument(
        "--specs", type=lambda v: [s for s in v.split(",") if s], default=[], help="comma list of name parts to keep"
    )
    parser.add_argument("--repeats", type=int, default=3, help="cold (and warm) runs per spec (default 3)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per server run (default 300)")
    parser.add_argument(
        "--fastmcp-repeat-under",
        type=float,
        default=10.0,
        help="repeat FastMCP's cold run only when its first took less (s, default 10)",
    )
    parser.add_argument("--skip-corpus", action="store_true", help="no cold-start runs")
    parser.add_argument("--skip-calls", action="store_true", help="no tools/call runs")
    parser.add_argument("--calls", type=int, default=600, help="small-response samples per side (default 600)")
    parser.add_argument("--large-calls", type=int, default=200, help="50 KB samples per side (default 200)")
    parser.add_argument("--warmup", type=int, default=50, help="calls per side before sampling (default 50)")
    parser.add_argument(
        "--per-round", type=int, default=1, help="passes over the sides in one random order before the next (default 1)"
    )
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent callers (default 50)")
    parser.add_argument("--throughput-calls", type=int, default=2000, help="calls per throughput round (default 2000)")
    parser.add_argument("--throughput-rounds", type=int, default=3, help="throughput rounds per side (default 3)")
    parser.add_argument(
        "--toolkiln-src",
        type=Path,
        help="import toolkiln from this copy of its packages (e.g. a `git archive HEAD` export) instead of the tree",
    )
    parser.add_argument("--out", type=Path, help="result file (default benchmarks/results/openapi-<time>.json)")
    parser.add_argument("--server-log", type=Path, help="append the call servers' stderr here (default: discarded)")
    args = parser.parse_args()
    set_toolkiln_src(args.toolkiln_src.resolve() if args.toolkiln_src else None)

    load_before = os.getloadavg()
    started = datetime.now(UTC)
    # Read before measuring: other commits may land while a long run goes on.
    commit = _commit(tree=args.toolkiln_src is None)
    measured = anyio.run(run, args, args.server_log or Path(os.devnull))
    targets = evaluate(measured)
    result = {
        "benchmark": "OpenAPI spec -> MCP tools: toolkiln beside FastMCP.from_openapi, stdio, Python SDK Client",
        "when": started.isoformat(timespec="seconds"),
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": {
            "python": platform.python_version(),
            "mcp": _version("mcp"),
            "fastmcp": _version("fastmcp"),
            "toolkiln": _version("toolkiln"),
            "toolkiln_commit": commit,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        **measured,
        "targets": targets,
    }
    if measured["specs"]:
        print_corpus(measured["specs"])
    if measured["calls"] is not None:
        print_calls(measured["calls"])
    print_targets(targets)
    out = args.out or RESULTS / f"openapi-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
