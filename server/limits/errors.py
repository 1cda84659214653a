"""Refusals an agent can act on: which limit, when to retry, what budget is left and when it resets.

Each is a `tools.errors.Refusal` raised by the limits step; its `structured` payload reaches the
client as the result's `structuredContent` next to the text (`server.wire.to_wire`), so a model
can read the numbers instead of parsing prose.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tools.errors import Refusal, ToolFailure

__all__ = ["ActionableFailure", "CostRejected", "InvalidCost", "QuotaExceeded", "RateLimited"]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


class ActionableFailure(Refusal):
    """A refusal with machine-readable details; `audit_status` names it in audit and metrics."""

    structured: dict[str, Any]


class RateLimited(ActionableFailure):
    """A rate limit refused the call; retrying after `retry_after_s` will be admitted."""

    audit_status = "rate_limited"

    def __init__(self, *, rule: str, scope: str, limit: int, period_s: float, retry_after_s: float, now: float) -> None:
        retry = max(1, math.ceil(retry_after_s))
        super().__init__(
            f"Rate limit '{rule}' exceeded ({limit} calls per {period_s:g} s, {_SCOPES.get(scope, scope)}). "
            f"Retry after {retry} s.",
            {
                "error": "rate_limited",
                "limit": rule,
                "scope": scope,
                "limit_calls": limit,
                "period_s": _amount(period_s),
                "retry_after_s": retry,
                "retry_at": _iso(now + retry),
            },
        )
        self.rule = rule
        self.retry_after_s = retry

    @property
    def retry_after(self) -> int:
        """Whole seconds until a retry is admitted (at least 1)."""
        return self.retry_after_s


_SCOPES = {
    "principal_tool": "for this caller and tool",
    "principal": "for this caller",
    "source": "for this tool source",
    "global": "for all callers",
}


class QuotaExceeded(ActionableFailure):
    """The call's cost exceeds what is left of a budget; it resets at `resets_at`."""

    audit_status = "quota_exceeded"

    def __init__(self, *, period: str, budget: float, used: float, cost: float, resets_at: float, now: float) -> None:
        remaining = max(0.0, budget - used)
        retry = max(1, math.ceil(resets_at - now))
        super().__init__(
            f"Quota exceeded: this call costs {_amount(cost)} but {_amount(remaining)} of the {period} budget of "
            f"{_amount(budget)} remains. The budget resets at {_iso(resets_at)} (in {retry} s).",
            {
                "error": "quota_exceeded",
                "limit": period,
                "budget": _amount(budget),
                "used": _amount(used),
                "remaining": _amount(remaining),
                "cost": _amount(cost),
                "resets_at": _iso(resets_at),
                "retry_after_s": retry,
            },
        )
        self.period = period
        self.remaining = remaining
        self.resets_at = resets_at


class InvalidCost(ValueError):
    """A cost that is not a finite number between 0 and the maximum; never charged."""


class CostRejected(ToolFailure):
    """A tool's configured cost is invalid; the call is refused rather than charged wrongly."""

    audit_status = "invalid"

    def __init__(self, tool: str, problem: str) -> None:
        super().__init__(f"Tool '{tool}' cannot be called: its cost is invalid ({problem})")
        self.tool = tool
