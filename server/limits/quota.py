"""Cost quotas: budgets per principal per UTC day and month, reserved before a call, settled after.

Amounts are kept as integer micro-units so that sums are exact (a budget of 10 with costs 3, 5 and
7 must never admit 15 through rounding). A reservation is charged or refunded exactly once: the
settle is a conditional update on the reservation's state, so a duplicate refund is a no-op.
"""

from __future__ import annotations

import math
import threading
import time
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from server.limits.backend import Clock
from server.limits.errors import InvalidCost

__all__ = [
    "MAX_COST",
    "Budgets",
    "MemoryQuota",
    "QuotaBackend",
    "QuotaDecision",
    "from_units",
    "period_keys",
    "to_units",
]

MAX_COST = 1_000_000.0
_UNITS = 1_000_000


def to_units(cost: object) -> int:
    """A validated cost as integer micro-units.

    Raises:
        InvalidCost: not a real number, negative, NaN, infinite or above `MAX_COST`.
    """
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        raise InvalidCost(f"cost must be a number, not {type(cost).__name__}")
    value = float(cost)
    if not math.isfinite(value) or value < 0 or value > MAX_COST:
        raise InvalidCost(f"cost must be finite and between 0 and {MAX_COST:g}, got {cost!r}")
    return round(value * _UNITS)


def from_units(units: int) -> float:
    return units / _UNITS


@dataclass(frozen=True, slots=True)
class Budgets:
    """A principal's budgets in micro-units; `None` means unlimited."""

    daily: int | None = None
    monthly: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.daily is None and self.monthly is None


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """`allowed`, or which period refused and the numbers an agent needs to plan around it."""

    allowed: bool
    period: str | None = None
    budget: int = 0
    used: int = 0
    resets_at: float = 0.0


ALLOWED = QuotaDecision(allowed=True)


def period_keys(now: float) -> tuple[str, str]:
    """The UTC day and month a charge at `now` belongs to."""
    moment = datetime.fromtimestamp(now, tz=UTC)
    return moment.strftime("d:%Y-%m-%d"), moment.strftime("m:%Y-%m")


def resets_at(period: str, now: float) -> float:
    moment = datetime.fromtimestamp(now, tz=UTC)
    if period == "daily":
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        return (start + timedelta(days=1)).timestamp()
    days = monthrange(moment.year, moment.month)[1]
    return (datetime(moment.year, moment.month, 1, tzinfo=UTC) + timedelta(days=days)).timestamp()


def decide(units: int, budgets: Budgets, used_day: int, used_month: int, now: float) -> QuotaDecision:
    if budgets.daily is not None and used_day + units > budgets.daily:
        return QuotaDecision(False, "daily", budgets.daily, used_day, resets_at("daily", now))
    if budgets.monthly is not None and used_month + units > budgets.monthly:
        return QuotaDecision(False, "monthly", budgets.monthly, used_month, resets_at("monthly", now))
    return ALLOWED


class QuotaBackend(Protocol):
    async def reserve(
        self, reservation_id: str, principal: str, units: int, budgets: Budgets, *, force: bool = False
    ) -> QuotaDecision:
        """Reserve `units` if every budget allows (or regardless, with `force`, for shadow mode)."""
        ...

    async def settle(self, reservation_id: str, *, charge: bool, wait: bool = False) -> bool:
        """Charge or refund a reservation; `False` if it was already settled (applied once)."""
        ...

    async def used(self, principal: str) -> tuple[int, int]:
        """Units reserved or charged in the current UTC day and month."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Reservation:
    principal: str
    day: str
    month: str
    units: int


class MemoryQuota:
    """Budgets in this process only; state is lost on restart."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._used: dict[tuple[str, str], int] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._lock = threading.Lock()

    async def reserve(
        self, reservation_id: str, principal: str, units: int, budgets: Budgets, *, force: bool = False
    ) -> QuotaDecision:
        with self._lock:
            now = self._clock()
            day, month = period_keys(now)
            used_day = self._used.get((principal, day), 0)
            used_month = self._used.get((principal, month), 0)
            decision = decide(units, budgets, used_day, used_month, now)
            if not decision.allowed and not force:
                return decision
            if reservation_id in self._reservations:
                raise ValueError(f"reservation {reservation_id!r} exists")
            self._used[(principal, day)] = used_day + units
            self._used[(principal, month)] = used_month + units
            self._reservations[reservation_id] = _Reservation(principal, day, month, units)
            return decision

    async def settle(self, reservation_id: str, *, charge: bool, wait: bool = False) -> bool:
        with self._lock:
            reservation = self._reservations.get(reservation_id)
            if reservation is None:
                return False
            # Settled for good: forgetting it keeps memory bounded, and a second settle of the
            # same id then finds nothing, so it cannot refund twice.
            del self._reservations[reservation_id]
            if not charge:
                for period in (reservation.day, reservation.month):
                    self._used[(reservation.principal, period)] -= reservation.units
            return True

    async def used(self, principal: str) -> tuple[int, int]:
        with self._lock:
            day, month = period_keys(self._clock())
            return self._used.get((principal, day), 0), self._used.get((principal, month), 0)

    def close(self) -> None:
        self._reservations.clear()
