"""Refusals an agent can act on (must-show #3): which limit, retry after, remaining and reset.

Driven by the SDK `Client` against the production server, so the fields are checked as a host
receives them: in the text an LLM reads and in `structuredContent` a program reads.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from server.app import build_server
from server.runtime import Runtime
from tests.server.audit.support import make_runtime, records
from tools.model import CallContext, Tool, ToolResult

pytestmark = pytest.mark.anyio


async def _ok(_arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


def _tool(name: str, cost: float = 1.0) -> Tool:
    return Tool(name=name, description=name, input_schema={"type": "object"}, executor=_ok, source="test", cost=cost)


@asynccontextmanager
async def _client(runtime: Runtime) -> AsyncIterator[Client]:
    async with runtime.running(), Client(build_server(runtime)) as client:
        yield client


def _text(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_a_rate_limited_call_says_which_limit_and_when_to_retry_in_text_and_structure(tmp_path: Path) -> None:
    runtime = make_runtime(
        tmp_path, [_tool("ping")], limits={"rules": [{"name": "ping-per-minute", "limit": 2, "period_s": 60}]}
    )
    async with _client(runtime) as client:
        assert not (await client.call_tool("ping", {})).is_error
        assert not (await client.call_tool("ping", {})).is_error
        refused = await client.call_tool("ping", {})
    assert refused.is_error
    text = _text(refused)
    assert "ping-per-minute" in text
    assert re.search(r"Retry after (\d+) s", text)
    retry = int(re.search(r"Retry after (\d+) s", text).group(1))  # type: ignore[union-attr]
    assert 1 <= retry <= 30  # 2 per 60 s: one slot frees every 30 s
    structured = refused.structured_content
    assert structured["error"] == "rate_limited"
    assert structured["limit"] == "ping-per-minute"
    assert structured["scope"] == "principal_tool"
    assert structured["retry_after_s"] == retry
    retry_at = datetime.strptime(structured["retry_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((retry_at - datetime.now(UTC)) - timedelta(seconds=retry)) < timedelta(seconds=5)
    statuses = [r["status"] for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"]
    assert statuses == ["allowed", "allowed", "rate_limited"]


async def test_an_over_budget_call_says_remaining_budget_and_reset_time_in_text_and_structure(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("report", cost=4)], quotas={"daily": 10, "monthly": 100})
    async with _client(runtime) as client:
        assert not (await client.call_tool("report", {})).is_error
        assert not (await client.call_tool("report", {})).is_error
        refused = await client.call_tool("report", {})
    assert refused.is_error
    structured = refused.structured_content
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert structured == {
        "error": "quota_exceeded",
        "limit": "daily",
        "budget": 10,
        "used": 8,
        "remaining": 2,
        "cost": 4,
        "resets_at": tomorrow,
        "retry_after_s": structured["retry_after_s"],
    }
    assert 1 <= structured["retry_after_s"] <= 86_400
    text = _text(refused)
    assert "costs 4 but 2 of the daily budget of 10 remains" in text
    assert tomorrow in text
    outcome = [r for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"][-1]
    assert (outcome["status"], outcome["limit"], outcome["cost"]) == ("quota_exceeded", "daily", 0)


async def test_the_monthly_budget_refuses_with_the_first_of_next_month_as_reset(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("report", cost=4)], quotas={"monthly": 5})
    async with _client(runtime) as client:
        assert not (await client.call_tool("report", {})).is_error
        refused = await client.call_tool("report", {})
    now = datetime.now(UTC)
    first = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    assert refused.structured_content["limit"] == "monthly"
    assert refused.structured_content["resets_at"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert refused.structured_content["remaining"] == 1


async def test_shadow_mode_counts_what_it_would_refuse_but_refuses_nothing(tmp_path: Path) -> None:
    runtime = make_runtime(
        tmp_path,
        [_tool("ping", cost=6)],
        limits={"shadow": True, "rules": [{"name": "tight", "limit": 1, "period_s": 60}]},
        quotas={"shadow": True, "daily": 10},
    )
    async with _client(runtime) as client:
        results = [await client.call_tool("ping", {}) for _ in range(3)]
    assert not any(result.is_error for result in results)
    outcomes = [r for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"]
    assert [o["status"] for o in outcomes] == ["allowed"] * 3
    assert [o["shadow"] for o in outcomes] == [None, ["tight", "quota:daily"], ["tight", "quota:daily"]]
    assert runtime.ledger.metrics.shadow.value("tight") == 2
    assert runtime.ledger.metrics.shadow.value("quota:daily") == 2
