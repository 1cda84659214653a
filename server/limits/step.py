"""The rate-limit and quota step: admit, reserve the cost, run the call, settle.

Refusals are raised (`RateLimited`, `QuotaExceeded`): their text and structured details say which
limit refused, when to retry, and what budget remains until when; the audit and metrics around
the step name them by their `audit_status`, and the step notes which limit refused.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import NoReturn

import anyio

from server.audit import notes
from server.config import QuotaSettings
from server.limits.backend import Clock, LimitBackend
from server.limits.errors import ActionableFailure, CostRejected, InvalidCost, QuotaExceeded, RateLimited
from server.limits.quota import Budgets, QuotaBackend, from_units, to_units
from server.limits.rules import LimitRules
from server.pipeline.chain import CallNext, Step, ToolCall
from server.wire import failure_result
from tools.model import Tool, ToolOutcome, ToolResult

__all__ = ["LimitStep", "refusal_result"]


def refusal_result(error: ActionableFailure) -> ToolResult:
    """The result a caller gets for a refusal (what `server.wire` sends): message and structured details."""
    return failure_result(error)


class LimitStep(Step):
    name = "limits"

    def __init__(
        self,
        rules: LimitRules,
        limits: LimitBackend | None,
        quota: QuotaBackend | None,
        quotas: QuotaSettings,
        *,
        limits_shadow: bool = False,
        clock: Clock = time.time,
    ) -> None:
        self._rules = rules
        self._limits = limits
        self._quota = quota
        self._limits_shadow = limits_shadow
        self._quota_shadow = quotas.shadow
        self._costs: Mapping[str, float] = quotas.costs
        self._clock = clock
        self._default_budgets = Budgets(_units(quotas.daily), _units(quotas.monthly))
        self._budgets = {
            principal: Budgets(_units(budget.daily), _units(budget.monthly))
            for principal, budget in quotas.principals.items()
        }

    def budgets_for(self, principal: str) -> Budgets:
        return self._budgets.get(principal, self._default_budgets)

    def cost_units(self, tool: Tool) -> int:
        """The validated cost of one call to `tool` (config override first, else the tool's own).

        Raises:
            CostRejected: the cost is negative, NaN, infinite or too large.
        """
        try:
            return to_units(self._costs.get(tool.name, tool.cost))
        except InvalidCost as exc:
            raise CostRejected(tool.name, str(exc)) from None

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        tool = call.resolved
        principal = call.context.principal
        if self._limits is not None and self._rules:
            await self._admit(call, tool)
        units = self.cost_units(tool)
        budgets = self.budgets_for(principal.id)
        if self._quota is None or budgets.unlimited:
            try:
                return await call_next(call)
            finally:
                call.notes[notes.COST] = from_units(units) if _charged(call) else 0
        reservation = notes.call_id(call.notes)
        try:
            decision = await self._quota.reserve(reservation, principal.id, units, budgets, force=self._quota_shadow)
        except BaseException:
            # Cancelled while waiting: the reservation may still be made; it must not leak.
            with anyio.CancelScope(shield=True):
                await self._quota.settle(reservation, charge=False)
            raise
        if not decision.allowed:
            error = QuotaExceeded(
                period=decision.period or "daily",
                budget=from_units(decision.budget),
                used=from_units(decision.used),
                cost=from_units(units),
                resets_at=decision.resets_at,
                now=self._clock(),
            )
            if not self._quota_shadow:
                _refuse(call, error, decision.period or "quota")
            call.notes.setdefault(notes.SHADOW, []).append(f"quota:{decision.period}")
        try:
            return await call_next(call)
        finally:
            charge = _charged(call)
            call.notes[notes.COST] = from_units(units) if charge else 0
            with anyio.CancelScope(shield=True):
                await self._quota.settle(reservation, charge=charge)

    async def _admit(self, call: ToolCall, tool: Tool) -> None:
        """Take a slot from every matching bucket.

        Raises:
            RateLimited: a bucket is empty (unless the limits run in shadow mode).
        """
        assert self._limits is not None
        buckets = self._rules.buckets(call.context.principal, tool)
        if not buckets:
            return
        admission = await self._limits.acquire(buckets)
        if admission.allowed or admission.denied_by is None:
            return
        spec = admission.denied_by
        if self._limits_shadow:
            call.notes.setdefault(notes.SHADOW, []).append(spec.rule)
            return
        error = RateLimited(
            rule=spec.rule,
            scope=spec.scope,
            limit=spec.limit,
            period_s=spec.period_s,
            retry_after_s=admission.retry_after_s,
            now=self._clock(),
        )
        _refuse(call, error, spec.rule)


def _refuse(call: ToolCall, error: ActionableFailure, limit: str) -> NoReturn:
    call.notes[notes.LIMIT] = limit
    raise error


def _charged(call: ToolCall) -> bool:
    """A call is charged once its executor was entered, unless it replayed or resumed a paid call."""
    return bool(call.notes.get(notes.EXECUTED)) and call.notes.get(notes.IDEMPOTENCY) not in ("replayed", "resumed")


def _units(budget: float | None) -> int | None:
    # Budgets are validated by the config (finite, 0…1e12); only costs go through `to_units`.
    return None if budget is None else round(budget * 1_000_000)
