"""The tool model every source produces and the pipeline consumes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import mcp_types as types

__all__ = [
    "TOOL_NAME_PATTERN",
    "UPSTREAM_OPERATION",
    "CallContext",
    "Principal",
    "Tool",
    "ToolAnnotations",
    "ToolExecutor",
    "ToolOutcome",
    "ToolResult",
    "is_valid_tool_name",
    "json_type_name",
]

TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# `Tool.meta` key naming the upstream operation a tool reaches; the policy decides tools that
# share one together (THREATS R2).
UPSTREAM_OPERATION = "upstream_operation"

JsonObject = dict[str, Any]


def json_type_name(value: object) -> str:
    """The JSON type of a decoded JSON value, for messages that say what was given instead."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_valid_tool_name(name: str) -> bool:
    """Whether `name` is usable by every host we target (Claude Desktop caps names at 64)."""
    return TOOL_NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class ToolAnnotations:
    """Behaviour hints shown to the client and used by policy (read-only vs mutating)."""

    title: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Filled by the transport; policy decides what the principal may do."""

    id: str
    roles: tuple[str, ...] = ()
    transport: str = "stdio"


@dataclass(slots=True)
class CallContext:
    """Everything an executor may use besides its arguments.

    `request` is the SDK's per-request context (progress, logging, sampling back-channel);
    it is `None` when a call does not come from an MCP session (benchmarks, unit tests).
    """

    principal: Principal
    request_id: str | int | None = None
    request: Any = None
    deadline_s: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returns: content blocks, optional structured content, error flag."""

    content: Sequence[types.ContentBlock]
    structured: JsonObject | None = None
    is_error: bool = False

    @classmethod
    def text(cls, text: str, *, is_error: bool = False) -> ToolResult:
        return cls(content=[types.TextContent(type="text", text=text)], is_error=is_error)


# The 2026-07-28 multi-round flow lets a tool ask the client for input instead of answering.
ToolOutcome = ToolResult | types.InputRequiredResult


class ToolExecutor(Protocol):
    """Runs one tool. Raises `tools.errors.ToolFailure` subclasses for expected failures."""

    def __call__(self, arguments: Mapping[str, Any], context: CallContext) -> Awaitable[ToolOutcome]: ...


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool as the registry holds it.

    `source` names the tool source that owns it (a spec, an adapter, a module, `fixtures`);
    `cost` is charged against quotas; `tags` and `annotations` feed policy.
    """

    name: str
    description: str
    input_schema: JsonObject
    executor: ToolExecutor | Callable[[Mapping[str, Any], CallContext], Awaitable[ToolOutcome]]
    source: str
    output_schema: JsonObject | None = None
    annotations: ToolAnnotations = ToolAnnotations()
    title: str | None = None
    cost: float = 1.0
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_valid_tool_name(self.name):
            raise ValueError(f"tool name {self.name!r} does not match {TOOL_NAME_PATTERN.pattern}")
        if self.input_schema.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: inputSchema must be a JSON Schema of type 'object'")
