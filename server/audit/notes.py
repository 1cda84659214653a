"""The facts the policy steps leave for one another in `ToolCall.notes`.

Written by one step, read by the audit and metrics steps around it; named here so the spelling
lives in one place.
"""

from __future__ import annotations

__all__ = [
    "CALL_ID",
    "COST",
    "EXECUTED",
    "IDEMPOTENCY",
    "INTENT_SEQ",
    "LIMIT",
    "POLICY_RULE",
    "SHADOW",
    "STATUS",
]

CALL_ID = "call_id"  # str: the id shared by the call's audit records and quota reservation
STATUS = "status"  # str: set when a step answers with a refusal result instead of raising
LIMIT = "limit"  # str: the rate limit or budget that refused the call
EXECUTED = "executed"  # bool: the intent is committed and the executor was entered
COST = "cost"  # float: what the call was charged (0 when refunded or replayed)
IDEMPOTENCY = "idempotency"  # "claimed" | "replayed" | "resumed"
SHADOW = "shadow"  # list[str]: limits that would have refused the call in shadow mode
INTENT_SEQ = "intent_seq"  # int: the seq of the committed intent record
POLICY_RULE = "policy_rule"  # str: the authorization rule that decided (set by the policy step)
