"""THREATS L3: concurrent costs never overspend a budget; invalid costs are refused; refunds apply once."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.audit.writer import GroupCommitWriter
from server.config import Settings
from server.limits import Budgets, CostRejected, InvalidCost, MemoryQuota, QuotaBackend, SqliteQuota, to_units
from server.limits.sqlite import LIMITS_SCHEMA
from tests.server.audit.support import Barrier, call, make_runtime, records
from tools.errors import ConfigError
from tools.model import CallContext, Tool, ToolResult

pytestmark = pytest.mark.anyio

UNIT = 1_000_000


def _schema(conn: sqlite3.Connection) -> None:
    for statement in LIMITS_SCHEMA:
        conn.execute(statement)


async def _with_backend(kind: str, tmp_path: Path) -> tuple[QuotaBackend, GroupCommitWriter | None]:
    if kind == "memory":
        return MemoryQuota(), None
    writer = GroupCommitWriter(tmp_path / "audit.db", setup=[_schema])
    return SqliteQuota(writer), writer


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_concurrent_costs_3_5_7_against_10_remaining_never_overspend(kind: str, tmp_path: Path) -> None:
    quota, writer = await _with_backend(kind, tmp_path)
    budgets = Budgets(daily=10 * UNIT)
    try:
        for run in range(50):
            principal = f"p{run}"
            barrier = Barrier(3)
            granted: list[int] = []

            async def reserve(
                cost: int, principal: str = principal, barrier: Barrier = barrier, granted: list[int] = granted
            ) -> None:
                await barrier.wait()
                decision = await quota.reserve(f"{principal}-{cost}", principal, cost * UNIT, budgets)
                if decision.allowed:
                    granted.append(cost)

            async with anyio.create_task_group() as tg:
                for cost in (3, 5, 7):
                    tg.start_soon(reserve, cost)
            assert sum(granted) <= 10
            assert granted  # the first to arrive always fits
            used_day, _ = await quota.used(principal)
            assert used_day == sum(granted) * UNIT
    finally:
        if writer is not None:
            writer.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_duplicate_refund_is_applied_once(kind: str, tmp_path: Path) -> None:
    quota, writer = await _with_backend(kind, tmp_path)
    try:
        budgets = Budgets(daily=10 * UNIT)
        assert (await quota.reserve("key-1", "alice", 5 * UNIT, budgets)).allowed
        assert (await quota.reserve("key-2", "alice", 3 * UNIT, budgets)).allowed
        results = [await quota.settle("key-1", charge=False, wait=True) for _ in range(3)]
        assert results == [True, False, False]
        assert (await quota.used("alice"))[0] == 3 * UNIT
        # A charge after the refund does not resurrect it either.
        assert await quota.settle("key-1", charge=True, wait=True) is False
        assert (await quota.used("alice"))[0] == 3 * UNIT
    finally:
        if writer is not None:
            writer.close()


@pytest.mark.parametrize(
    "cost",
    [
        pytest.param(-1, id="negative"),
        pytest.param(-0.000001, id="tiny-negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="minus-inf"),
        pytest.param(10**30, id="ten-to-the-30"),
        pytest.param(1e30, id="float-1e30"),
        pytest.param(True, id="bool"),
        pytest.param("1", id="string"),
        pytest.param(None, id="none"),
    ],
)
def test_invalid_costs_are_rejected_before_anything_is_charged(cost: object) -> None:
    with pytest.raises(InvalidCost):
        to_units(cost)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("-1", id="negative"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="inf"),
        pytest.param("1e30", id="ten-to-the-30"),
    ],
)
def test_invalid_costs_in_config_are_refused_at_load(value: str, tmp_path: Path) -> None:
    from server.config import load_settings

    path = tmp_path / "toolkiln.toml"
    path.write_text(f"[quotas.costs]\nping = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"quotas\.costs\.ping"):
        load_settings(path)


async def _ok(_arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


def _tool(name: str, cost: float = 1.0) -> Tool:
    return Tool(name=name, description=name, input_schema={"type": "object"}, executor=_ok, source="test", cost=cost)


async def test_a_tool_with_an_invalid_cost_is_refused_not_charged(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("broken", cost=math.nan)], quotas={"daily": 10})
    async with runtime.running():
        with pytest.raises(CostRejected, match="cost is invalid"):
            await call(runtime, "broken")
    outcome_record = records(tmp_path / "audit.db")[-1]
    assert outcome_record["status"] == "invalid"
    assert outcome_record["cost"] == 0


async def test_quota_exhaustion_through_the_pipeline_charges_exactly_the_budget(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [_tool("three", 3), _tool("five", 5), _tool("seven", 7)], quotas={"daily": 10})
    async with runtime.running():
        for _ in range(5):
            barrier = Barrier(3)
            outcomes: list[ToolResult] = []

            async def one(name: str, barrier: Barrier = barrier, outcomes: list[ToolResult] = outcomes) -> None:
                await barrier.wait()
                result = await call(runtime, name)
                assert isinstance(result, ToolResult)
                outcomes.append(result)

            async with anyio.create_task_group() as tg:
                for name in ("three", "five", "seven"):
                    tg.start_soon(one, name)
        used_day, _ = await runtime.ledger.quota.used("alice")  # type: ignore[union-attr]
    charged = sum(record["cost"] for record in records(tmp_path / "audit.db") if record["kind"] == "outcome")
    assert charged <= 10
    assert used_day == charged * UNIT


def test_config_costs_override_the_tools_own_cost() -> None:
    from server.audit.ledger import Ledger

    ledger = Ledger(Settings.model_validate({"quotas": {"costs": {"ping": 2.5}}, "audit": {"enabled": False}}))
    assert ledger.limit_step.cost_units(_tool("ping", cost=9)) == 2_500_000
    assert ledger.limit_step.cost_units(_tool("other", cost=9)) == 9 * UNIT
