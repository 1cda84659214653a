"""Metrics: the Prometheus text at /metrics over real HTTP, and `toolkiln stats` for stdio users."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client

from server.metrics import Counter, Histogram, MetricsRegistry
from tests.support.servers import serve_http, toolkiln_command


def test_label_values_are_escaped_and_histograms_are_cumulative() -> None:
    registry = MetricsRegistry()
    counter = Counter("demo_total", "Demo.", ("tool",))
    histogram = Histogram("demo_seconds", "Demo latency.", ("tool",), buckets=(0.1, 1.0))
    registry.register(counter)
    registry.register(histogram)
    counter.inc('we"ird\\na\nme')
    for value in (0.05, 0.5, 0.5, 5.0):
        histogram.observe(value, "t")
    text = registry.exposition()
    assert 'demo_total{tool="we\\"ird\\\\na\\nme"} 1' in text
    assert 'demo_seconds_bucket{tool="t",le="0.1"} 1' in text
    assert 'demo_seconds_bucket{tool="t",le="1"} 3' in text
    assert 'demo_seconds_bucket{tool="t",le="+Inf"} 4' in text
    assert 'demo_seconds_sum{tool="t"} 6.05' in text
    assert 'demo_seconds_count{tool="t"} 4' in text
    assert "# TYPE demo_seconds histogram" in text


def test_series_per_family_are_capped_so_hostile_names_cannot_grow_memory() -> None:
    counter = Counter("capped_total", "Capped.", ("tool",))
    for index in range(6000):
        counter.inc(f"tool-{index}")
    series = counter.series()
    assert len(series) == 5001
    assert series[("(other)",)] == 1000


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split("}")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.anyio
async def test_metrics_endpoint_counts_calls_errors_denials_and_latency_per_tool(tmp_path: Path) -> None:
    with serve_http("--conformance-fixtures", cwd=tmp_path) as server:
        async with Client(server.url) as client:
            for _ in range(3):
                assert not (await client.call_tool("test_simple_text", {})).is_error
            with pytest.raises(Exception, match="Unknown tool"):
                await client.call_tool("no-such-tool-\u202e", {})
        response = httpx.get(f"{server.base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    ok = {"tool": "test_simple_text", "source": "fixtures", "status": "allowed"}
    assert _sample(text, "toolkiln_tool_calls_total", **ok) == 3
    assert _sample(text, "toolkiln_tool_call_duration_seconds_count", tool="test_simple_text") == 3
    assert _sample(text, "toolkiln_tool_denials_total", tool="(unknown)", status="unknown_tool") == 1
    assert "no-such-tool" not in text  # attacker-chosen names never become labels


def test_stats_summarises_calls_from_the_audit_log_for_stdio_users(tmp_path: Path) -> None:
    call = subprocess.run(
        toolkiln_command("call", "--conformance-fixtures", "test_simple_text"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert call.returncode == 0, call.stderr
    stats = subprocess.run(
        [sys.executable, "-m", "server", "stats", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert report["calls"] == 1
    (tool,) = report["tools"]
    assert (tool["tool"], tool["statuses"]) == ("test_simple_text", {"allowed": 1})
    assert tool["p50_ms"] > 0
