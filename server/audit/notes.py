"""The facts the policy steps leave for one another in `ToolCall.notes`.

Written by one step, read by the audit and metrics steps around it; named here so the spelling
lives in one place.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import MutableMapping
from typing import Any

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
    "call_id",
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


# A random per-process prefix plus a counter: unique across processes and restarts, and without
# a system call per call (uuid4 reads the OS entropy pool every time).
_PREFIX = secrets.token_hex(6)
_COUNTER = itertools.count(1)


def _new_prefix() -> None:
    global _PREFIX
    _PREFIX = secrets.token_hex(6)


# A forked child must not reuse its parent's ids.
os.register_at_fork(after_in_child=_new_prefix)


def call_id(call_notes: MutableMapping[str, Any]) -> str:
    """The call's id, assigned on first use by whichever step needs it first."""
    existing = call_notes.get(CALL_ID)
    if isinstance(existing, str):
        return existing
    fresh = f"{_PREFIX}{next(_COUNTER):010x}"
    call_notes[CALL_ID] = fresh
    return fresh
