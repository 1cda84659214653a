"""`toolkiln stats`: call counts, outcomes, latency and quota use, read from the audit log.

For stdio users, whose server lives inside the host and has no `/metrics` endpoint: the audit
log is the durable record every process writes, so the numbers cover all of them, over any window.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.commands.base import Command, CommandContext, add_config_option

__all__ = ["COMMAND", "collect_stats"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--since", default="24h", help="window: a duration back from now (90m, 24h, 7d) or ISO time")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


def _percentile(values: list[int], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index] / 1000


def collect_stats(db: Path, since: str) -> dict[str, Any]:
    """Per tool: calls by status, p50/p95/max latency (ms) and cost; per principal: quota used."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT tool, status, json_extract(body, '$.source'), json_extract(body, '$.latency_us'),"
            " json_extract(body, '$.cost') FROM audit_records WHERE kind = 'outcome' AND ts >= ?",
            (since,),
        ).fetchall()
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        now = datetime.now(UTC)
        quota: list[dict[str, Any]] = []
        if "quota_usage" in tables:
            periods = (now.strftime("d:%Y-%m-%d"), now.strftime("m:%Y-%m"))
            used: dict[str, dict[str, float]] = {}
            for principal, period, units in conn.execute(
                "SELECT principal, period, used FROM quota_usage WHERE period IN (?, ?)", periods
            ):
                used.setdefault(principal, {})["today" if period == periods[0] else "month"] = units / 1_000_000
            quota = [{"principal": p, **v} for p, v in sorted(used.items())]
    finally:
        conn.close()
    tools: dict[str, dict[str, Any]] = {}
    latencies: dict[str, list[int]] = {}
    for tool, status, source, latency, cost in rows:
        entry = tools.setdefault(tool, {"tool": tool, "source": source, "calls": 0, "statuses": {}, "cost": 0.0})
        entry["calls"] += 1
        entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
        entry["cost"] += float(cost or 0)
        latencies.setdefault(tool, []).append(int(latency or 0))
    for tool, entry in tools.items():
        values = latencies[tool]
        entry["p50_ms"] = _percentile(values, 0.5)
        entry["p95_ms"] = _percentile(values, 0.95)
        entry["max_ms"] = max(values) / 1000 if values else 0.0
    return {
        "since": since,
        "calls": sum(entry["calls"] for entry in tools.values()),
        "tools": sorted(tools.values(), key=lambda e: (-e["calls"], e["tool"])),
        "quota": quota,
    }


def _since(text: str) -> str:
    from server.commands.tokens import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        return text
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _run(ctx: CommandContext) -> int:
    from server.audit.ledger import LedgerPaths

    db = LedgerPaths.from_settings(ctx.settings).db
    if not db.exists():
        print(f"toolkiln: no audit log at {db} (stats are read from it)", file=sys.stderr)
        return 2
    stats = collect_stats(db, _since(ctx.args.since))
    if ctx.args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    print(f"{stats['calls']} calls since {stats['since']}")
    for entry in stats["tools"]:
        statuses = ", ".join(f"{k}={v}" for k, v in sorted(entry["statuses"].items()))
        print(
            f"  {entry['tool']} [{entry['source']}]: {entry['calls']} calls ({statuses}); "
            f"p50 {entry['p50_ms']:.3f} ms, p95 {entry['p95_ms']:.3f} ms, max {entry['max_ms']:.3f} ms; "
            f"cost {entry['cost']:g}"
        )
    for row in stats["quota"]:
        print(f"  quota {row['principal']}: today {row.get('today', 0):g}, this month {row.get('month', 0):g}")
    return 0


COMMAND = Command(
    name="stats",
    help="call counts, outcomes, latency and quota use (from the audit log)",
    description="Summarise tool calls from the audit log: counts per outcome, latency percentiles, quota use.",
    configure=_configure,
    run=_run,
)
