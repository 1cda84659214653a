"""How a call ended, as one word shared by the audit log and the metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from server.audit import notes
from tools.errors import (
    InvalidArguments,
    ToolCrashed,
    ToolFailure,
    ToolHidden,
    ToolTimeout,
    UnknownTool,
    UpstreamFailure,
)
from tools.model import ToolResult

__all__ = ["DENIAL_STATUSES", "ERROR_STATUSES", "classify"]

# Refusals by policy, limits or quotas: the call never ran.
DENIAL_STATUSES = frozenset({"denied", "rate_limited", "quota_exceeded", "unknown_tool"})
# Calls that ran (or tried to) and failed.
ERROR_STATUSES = frozenset(
    {"tool_error", "upstream_error", "timeout", "cancelled", "crashed", "unavailable", "outcome_unknown"}
)


def classify(call_notes: Mapping[str, Any], outcome: object) -> str:
    """`outcome` is the returned result or the raised exception."""
    noted = call_notes.get(notes.STATUS)
    if isinstance(noted, str):
        return noted
    if isinstance(outcome, ToolResult):
        return "tool_error" if outcome.is_error else "allowed"
    if isinstance(outcome, BaseException):
        return _exception_status(outcome)
    return "allowed"  # input-required and other non-error outcomes


def _exception_status(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    declared = getattr(exc, "audit_status", None)
    if isinstance(declared, str):
        return declared
    if isinstance(exc, ToolHidden):
        return "denied"
    if isinstance(exc, UnknownTool):
        return "unknown_tool"
    if isinstance(exc, InvalidArguments):
        return "invalid"
    if isinstance(exc, ToolTimeout):
        return "timeout"
    if isinstance(exc, UpstreamFailure):
        return "upstream_error"
    if isinstance(exc, ToolCrashed | ToolFailure):
        return "tool_error"
    return "crashed"
