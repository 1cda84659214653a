"""Rate limits (GCRA, per principal × tool, principal, source or globally) and cost quotas.

Backends: in-process (`MemoryLimits`, `MemoryQuota`) and SQLite (`SqliteLimits`, `SqliteQuota`,
shared by every process on the host). Both implement the small `LimitBackend` / `QuotaBackend`
protocols, which a Redis backend would implement next.
"""

from server.limits.backend import LimitBackend, MemoryLimits
from server.limits.errors import ActionableFailure, CostRejected, InvalidCost, QuotaExceeded, RateLimited
from server.limits.gcra import Admission, BucketSpec, decide_all
from server.limits.quota import MAX_COST, Budgets, MemoryQuota, QuotaBackend, QuotaDecision, from_units, to_units
from server.limits.rules import LimitRules, bucket_key
from server.limits.sqlite import LIMITS_SCHEMA, SqliteLimits, SqliteQuota, settle_reservation
from server.limits.step import LimitStep, refusal_result

__all__ = [
    "LIMITS_SCHEMA",
    "MAX_COST",
    "ActionableFailure",
    "Admission",
    "BucketSpec",
    "Budgets",
    "CostRejected",
    "InvalidCost",
    "LimitBackend",
    "LimitRules",
    "LimitStep",
    "MemoryLimits",
    "MemoryQuota",
    "QuotaBackend",
    "QuotaDecision",
    "QuotaExceeded",
    "RateLimited",
    "SqliteLimits",
    "SqliteQuota",
    "bucket_key",
    "decide_all",
    "from_units",
    "refusal_result",
    "settle_reservation",
    "to_units",
]
