"""The one place that decides how an outcome or an error reaches the client.

ToolFailure (and Refusal)  → tools/call: CallToolResult(isError, text, structuredContent)
                             other requests (resources, prompts): JSON-RPC -32603 with the
                             message, `data` = the structured details
ProtocolFault              → JSON-RPC error (its code, message and `data`)
anything else              → JSON-RPC -32603 "Internal error", no detail
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from tools.errors import ProtocolFault, ToolFailure
from tools.model import ToolAnnotations, ToolOutcome, ToolResult

__all__ = [
    "INTERNAL_ERROR",
    "call_result_wire",
    "failure_result",
    "to_call_result",
    "to_mcp_annotations",
    "to_protocol_error",
    "to_request_error",
    "to_wire",
]

INTERNAL_ERROR = -32603


def failure_result(error: ToolFailure) -> ToolResult:
    """The `isError` result of a tool failure: its message as text, its details as structured content."""
    return ToolResult(
        content=[types.TextContent(type="text", text=error.message)], structured=error.structured, is_error=True
    )


def to_wire(error: Exception) -> types.CallToolResult:
    """Tool failures become `isError` results; everything else is raised as a JSON-RPC error.

    Raises:
        MCPError: for a `ProtocolFault` (unknown or hidden tool → -32602, identical bytes), and
            -32603 "Internal error" for anything that is not a `ToolkilnError` (see
            `to_protocol_error`).
    """
    if isinstance(error, ToolFailure):
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=error.message)],
            structured_content=error.structured,
            is_error=True,
        )
    raise to_protocol_error(error) from None


def to_protocol_error(error: Exception) -> MCPError:
    """The JSON-RPC error for a request that failed other than as a tool failure.

    Only a `ProtocolFault` says what went wrong; any other error (a setup problem, a bug in a
    step) is a bare -32603, so internals such as paths or upstream text never reach the client.
    """
    if isinstance(error, ProtocolFault):
        return MCPError(error.code, error.message, error.data)
    return MCPError(INTERNAL_ERROR, "Internal error")


def to_request_error(error: Exception) -> MCPError:
    """The JSON-RPC error for a request that has no `isError` result (resources/read, prompts/get).

    A tool failure there (rate limited, timed out, the reader failed) keeps its message, which is
    written for the caller, and sends its structured details as `data`.
    """
    if isinstance(error, ToolFailure):
        return MCPError(INTERNAL_ERROR, error.message, error.structured)
    return to_protocol_error(error)


def to_call_result(outcome: ToolOutcome) -> types.CallToolResult | types.InputRequiredResult:
    if isinstance(outcome, ToolResult):
        return types.CallToolResult(
            content=list(outcome.content),
            structured_content=outcome.structured,
            is_error=outcome.is_error,
        )
    return outcome


_COMPLETE = types.CallToolResult(content=[]).model_dump(by_alias=True, mode="json", exclude_none=True)["resultType"]


def call_result_wire(outcome: ToolOutcome) -> dict[str, Any] | types.InputRequiredResult:
    """`to_call_result`, as the dict the model would dump to, built without the model.

    The SDK validates a handler's result against the negotiated protocol version and dumps it
    anyway; a model returned here would first be dumped to a dict, one more walk over a
    structured result of any size. The structured content is the tool's own object: the SDK
    copies it while serializing and never writes to it.
    """
    if not isinstance(outcome, ToolResult):
        return outcome
    wire: dict[str, Any] = {
        "content": [block.model_dump(by_alias=True, mode="json", exclude_none=True) for block in outcome.content]
    }
    if outcome.structured is not None:
        wire["structuredContent"] = outcome.structured
    wire["isError"] = outcome.is_error
    wire["resultType"] = _COMPLETE
    return wire


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
