"""OpenAPI cold start: process start → first `tools/list` result, and the server's peak memory.

Each run launches `python -m server serve` over stdio in a fresh working directory (a fresh data
dir: no conversion cache, no audit key, no databases), with one `[[sources]]` table pointing at the
spec, and times it with a real MCP client (the SDK `Client`, default protocol mode) from just
before the process is spawned until the first tools/list result is in hand. Peak RSS is the
server process's VmHWM read from /proc while it is still running. `--warm` runs a second start in
the same directory, so it shows the conversion cache too.

    .venv/bin/python benchmarks/bench_openapi_cold_start.py                    # the default specs, 3 runs each
    .venv/bin/python benchmarks/bench_openapi_cold_start.py --runs 5 --spec /path/to/spec.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[1]
SPECS = Path(os.environ.get("TOOLKILN_SPECS", "/work/shared/specs"))
RESULTS = ROOT / "benchmarks" / "results"

TINY_SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "tiny", "version": "1"},
    "servers": [{"url": "https://api.example.com"}],
    "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}},
}
# (label, file name, target seconds, target MB) — the feature's targets; None = no target.
DEFAULT_SPECS: list[tuple[str, str, float | None, float | None]] = [
    ("github", "github-api-3.0.json", 1.5, 200),
    ("stripe-spec3", "stripe-2022-04-spec3-3.0.json", 3.0, 300),
    ("k8s-core", "k8s-1.24-core-v1-3.0.json", None, None),
    ("tiny", "", None, None),
]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (less noisy than wall time on a busy machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def _one_start(spec: Path, workdir: Path) -> dict[str, Any]:
    config = workdir / "toolkiln.toml"
    config.write_text(
        f'[logging]\nlevel = "warning"\n\n[[sources]]\nspec = {json.dumps(str(spec))}\n'
        'base_url = "https://api.example.com"\nwatch = false\n',
        encoding="utf-8",
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "server", "serve", "--transport", "stdio", "--config", str(config)],
        cwd=str(workdir),
        env={**os.environ, "TOOLKILN_LOG_LEVEL": "warning"},
    )
    before = set(_children(os.getpid()))
    started = time.perf_counter()
    with open(workdir / "server.log", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.list_tools()
            elapsed = time.perf_counter() - started
            servers = [pid for pid in _children(os.getpid()) if pid not in before]
            peak = max(_vm_hwm_mb(pid) for pid in servers)
            cpu = sum(_cpu_s(pid) for pid in servers)
    wire = len(result.model_dump_json(by_alias=True, exclude_none=True))
    return {"seconds": elapsed, "cpu_s": cpu, "peak_mb": peak, "tools": len(result.tools), "list_bytes": wire}


def _summary(label: str, spec: Path, runs: list[dict[str, Any]], targets: tuple[Any, Any]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    peaks = [r["peak_mb"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    size = spec.stat().st_size
    return {
        "label": label,
        "spec": spec.name,
        "spec_bytes": size,
        "tools": runs[0]["tools"],
        "list_bytes": runs[0]["list_bytes"],
        "list_over_spec": round(runs[0]["list_bytes"] / size, 2),
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(statistics.median(seconds), 3),
        "cpu_s": [round(c, 2) for c in cpus],
        "median_cpu_s": round(statistics.median(cpus), 2),
        "peak_mb": [round(p, 1) for p in peaks],
        "median_peak_mb": round(statistics.median(peaks), 1),
        "target_s": targets[0],
        "target_mb": targets[1],
    }


async def _main(args: argparse.Namespace) -> None:
    plan = (
        [(Path(p).stem, Path(p), None, None) for p in args.spec]
        if args.spec
        else [(label, SPECS / name if name else Path(), s, m) for label, name, s, m in DEFAULT_SPECS]
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="toolkiln-cold-") as scratch:
        tiny = Path(scratch) / "tiny.json"
        tiny.write_text(json.dumps(TINY_SPEC), encoding="utf-8")
        for label, spec, target_s, target_mb in plan:
            path = tiny if label == "tiny" else spec
            cold, warm = [], []
            for run in range(args.runs):
                workdir = Path(scratch) / f"{label}-{run}"
                workdir.mkdir()
                cold.append(await _one_start(path, workdir))
                if args.warm:
                    warm.append(await _one_start(path, workdir))
            row = _summary(label, path, cold, (target_s, target_mb))
            if warm:
                row["warm"] = _summary(label, path, warm, (None, None))
            rows.append(row)
            _print(row)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"openapi_cold_start-{stamp}.json"
        out.write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")


def _print(row: dict[str, Any]) -> None:
    target = ""
    if row["target_s"] is not None:
        ok = row["median_s"] < row["target_s"] and row["median_peak_mb"] < row["target_mb"]
        target = f"  target < {row['target_s']} s / {row['target_mb']} MB: {'met' if ok else 'MISSED'}"
    cold = f"cold {row['seconds']} s (median {row['median_s']}, server CPU {row['median_cpu_s']} s)"
    listed = f"list {row['list_bytes']:,} B = {row['list_over_spec']}x spec"
    print(f"{row['label']:<14} {row['tools']:>5} tools  {cold}  peak {row['peak_mb']} MB  {listed}{target}")
    if "warm" in row:
        warm = row["warm"]
        print(f"{'':<26} warm {warm['seconds']} s (server CPU {warm['median_cpu_s']} s)  peak {warm['peak_mb']} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spec", action="append", help="measure this spec instead of the default set")
    parser.add_argument("--warm", action="store_true", help="also time a second start (conversion cache)")
    parser.add_argument("--no-save", action="store_true", help="do not write a results file")
    anyio.run(_main, parser.parse_args())


if __name__ == "__main__":
    main()
