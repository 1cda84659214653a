"""The one place that decides how an outcome or an error reaches the client."""

from __future__ import annotations

import mcp_types as types
from mcp.shared.exceptions import MCPError

from tools.errors import ProtocolFault, ToolFailure, ToolkilnError
from tools.model import ToolAnnotations, ToolOutcome, ToolResult

__all__ = ["to_call_result", "to_mcp_annotations", "to_wire"]

INTERNAL_ERROR = -32603


def to_wire(error: ToolkilnError) -> types.CallToolResult:
    """Tool failures become `isError` results; protocol faults are raised as JSON-RPC errors.

    Raises:
        MCPError: for a `ProtocolFault` (unknown or hidden tool → -32602, identical bytes).
    """
    if isinstance(error, ProtocolFault):
        raise MCPError(error.code, error.message) from None
    if isinstance(error, ToolFailure):
        return types.CallToolResult(content=[types.TextContent(type="text", text=error.message)], is_error=True)
    raise MCPError(INTERNAL_ERROR, "Internal error") from None


def to_call_result(outcome: ToolOutcome) -> types.CallToolResult | types.InputRequiredResult:
    if isinstance(outcome, ToolResult):
        return types.CallToolResult(
            content=list(outcome.content),
            structured_content=outcome.structured,
            is_error=outcome.is_error,
        )
    return outcome


def to_mcp_annotations(annotations: ToolAnnotations) -> types.ToolAnnotations | None:
    if annotations == ToolAnnotations():
        return None
    return types.ToolAnnotations(
        title=annotations.title,
        read_only_hint=annotations.read_only,
        destructive_hint=annotations.destructive,
        idempotent_hint=annotations.idempotent,
        open_world_hint=annotations.open_world,
    )
