"""GCRA (the generic cell rate algorithm), one bucket at a time, as pure functions.

A bucket's whole state is one number, the theoretical arrival time (TAT): when the bucket would be
empty again. A call is admitted if, after adding its emission interval, the TAT lies no further
ahead of now than the burst allows. Pure functions so the memory, SQLite (and a future Redis)
backend share one implementation, and the arithmetic is testable without clocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Admission", "BucketSpec", "decide_all"]

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One bucket a call is charged against. `key` is opaque and collision-free (hashed)."""

    key: str
    rule: str
    scope: str
    limit: int
    period_s: float
    burst: int

    @property
    def interval(self) -> float:
        return self.period_s / self.limit

    @property
    def tolerance(self) -> float:
        return self.interval * self.burst


@dataclass(frozen=True, slots=True)
class Admission:
    """The decision for one call across all its buckets; `denied_by` is the binding bucket."""

    allowed: bool
    denied_by: BucketSpec | None = None
    retry_after_s: float = 0.0


ALLOWED = Admission(allowed=True)


def _next_tat(tat: float | None, now: float, spec: BucketSpec) -> float:
    base = now if tat is None or tat < now else tat
    # A TAT beyond what one full burst could reach can only come from a clock that jumped back;
    # clamping keeps such a bucket merely full instead of locked for the jump's length.
    base = min(base, now + spec.tolerance)
    return base + spec.interval


def decide_all(
    states: Mapping[str, float], buckets: Sequence[BucketSpec], now: float
) -> tuple[Admission, dict[str, float]]:
    """Admit only if every bucket admits; returns the decision and, if admitted, the new TATs.

    All-or-nothing: a call refused by one bucket consumes nothing from the others.
    """
    updates: dict[str, float] = {}
    worst: BucketSpec | None = None
    worst_wait = 0.0
    for spec in buckets:
        new_tat = _next_tat(states.get(spec.key), now, spec)
        wait = new_tat - now - spec.tolerance
        if wait > _EPSILON:
            if worst is None or wait > worst_wait:
                worst, worst_wait = spec, wait
            continue
        updates[spec.key] = new_tat
    if worst is not None:
        return Admission(allowed=False, denied_by=worst, retry_after_s=worst_wait), {}
    return ALLOWED, updates
