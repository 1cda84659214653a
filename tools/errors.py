"""The one exception tree of toolkiln.

Every failure a tool call can meet is one of these. Third-party errors (httpx, sqlite, jsonschema)
are translated into them at the boundary where they occur; exactly one function,
`server.wire.to_wire`, decides how each reaches the client::

    ToolkilnError
    ├── ProtocolFault                 → JSON-RPC error (code, message, data)
    │   ├── UnknownTool               → -32602 "Unknown tool: NAME"
    │   │   └── ToolHidden            → the same bytes: a denied tool looks non-existent
    │   └── MissingClientCapability   → -32021, data names the capabilities the tool needs
    ├── ToolFailure                   → CallToolResult(isError=True, text=message,
    │   │                               structuredContent=structured)
    │   ├── Refusal                   → a well-formed call declined for now, with details the agent
    │   │   │                           can act on (`server.limits`: RateLimited(retry_after),
    │   │   │                           QuotaExceeded(remaining, resets_at); an idempotent call
    │   │   │                           still in progress)
    │   ├── InvalidArguments          → arguments do not match inputSchema (names every problem)
    │   ├── ToolTimeout               → the per-call deadline passed
    │   ├── ToolCrashed               → the executor raised something unexpected
    │   ├── RequestRefused            → an argument would make an unsafe upstream request (path
    │   │                               traversal, CR/LF in a header, a control header); nothing sent
    │   └── UpstreamFailure           → a proxied API failed (issue-specific subclasses live
    │       │                           next to their executor and derive from this)
    │       ├── UpstreamError         → the upstream answered non-2xx (status, bounded body)
    │       ├── UpstreamTimeout       → connect/read/write/pool phase or the total deadline ran out
    │       ├── UpstreamUnreachable   → no connection, or the HTTP exchange broke off
    │       ├── ResponseTooLarge      → the decoded body passed the source's cap
    │       └── EgressBlocked         → the target address is private/reserved and not allowlisted
    └── SetupError                    → never reaches a client: start-up and load-time problems
        ├── ConfigError               → bad config file (file, line, key)
        ├── BaseUrlRefused            → a source's base URL is unusable or outside its egress policy
        └── ToolNameCollision         → two sources claim one tool name

The OpenAPI executor's errors live in `tools.openapi.errors`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MISSING_CLIENT_CAPABILITY",
    "ConfigError",
    "InvalidArguments",
    "MissingClientCapability",
    "ProtocolFault",
    "Refusal",
    "SetupError",
    "ToolCrashed",
    "ToolFailure",
    "ToolHidden",
    "ToolNameCollision",
    "ToolTimeout",
    "ToolkilnError",
    "UnknownTool",
    "UpstreamFailure",
]

INVALID_PARAMS = -32602
# The spec's MissingRequiredClientCapabilityError (answered with HTTP 400 on Streamable HTTP).
MISSING_CLIENT_CAPABILITY = -32021


class ToolkilnError(Exception):
    """Root of every error toolkiln raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolFault(ToolkilnError):
    """A fault in the request itself; answered with a JSON-RPC error.

    `data` is the error's machine-readable detail (JSON); `None` sends no `data` at all, which is
    what the faults that must look alike (unknown and hidden tools) rely on.
    """

    code: int = INVALID_PARAMS
    # How the audit log and metrics name the outcome (`server.audit.status`).
    audit_status = "invalid"

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data


class UnknownTool(ProtocolFault):
    """No tool of that name is visible to the caller."""

    code = INVALID_PARAMS
    audit_status = "unknown_tool"

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {name}")
        self.name = name


class ToolHidden(UnknownTool):
    """The tool exists but the caller may not see it; the wire form equals `UnknownTool`."""

    audit_status = "denied"


class MissingClientCapability(ProtocolFault):
    """The tool needs client capabilities (sampling, elicitation…) the client did not declare."""

    code = MISSING_CLIENT_CAPABILITY

    def __init__(self, tool: str, missing: dict[str, Any]) -> None:
        super().__init__(
            f"Tool '{tool}' needs client capabilities: {', '.join(sorted(missing))}",
            data={"requiredCapabilities": missing},
        )
        self.tool = tool
        self.missing = missing


class ToolFailure(ToolkilnError):
    """The call was well-formed but the tool could not do its job; answered with `isError`.

    `structured` (JSON) is sent as the result's `structuredContent` next to the message, so a
    program can read the numbers a model reads in the text.
    """

    def __init__(self, message: str, *, structured: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.structured = structured


class Refusal(ToolFailure):
    """The call was declined before it ran and may succeed later; `structured` says when or why.

    Raised inside the pipeline like every other failure (so logging, metrics and the audit see it
    and name it by `audit_status`); an in-process caller of `Pipeline.call_tool` gets it back as
    the same `isError` result a client gets.
    """

    audit_status = "refused"

    def __init__(self, message: str, structured: dict[str, Any]) -> None:
        super().__init__(message, structured=structured)


class InvalidArguments(ToolFailure):
    """The arguments do not satisfy the tool's `inputSchema`."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        listed = "; ".join(problems)
        super().__init__(f"Invalid arguments for tool '{tool}': {listed}")
        self.tool = tool
        self.problems = problems


class ToolTimeout(ToolFailure):
    """The call ran past its deadline and was cancelled."""

    def __init__(self, tool: str, seconds: float) -> None:
        super().__init__(f"Tool '{tool}' timed out after {seconds:g} s")
        self.tool = tool
        self.seconds = seconds


class ToolCrashed(ToolFailure):
    """The executor raised an unexpected exception; its text is kept, its traceback logged."""


class UpstreamFailure(ToolFailure):
    """A proxied upstream API or worker failed; subclasses say how."""


class SetupError(ToolkilnError):
    """A start-up or load-time problem; reported to the operator, never to a client."""


class ConfigError(SetupError):
    """A configuration file is unreadable or invalid.

    The message names the file, the line (when known) and the key, as an operator needs to fix it.
    """

    def __init__(self, path: str, problem: str, *, line: int | None = None, key: str | None = None) -> None:
        where = path if line is None else f"{path}:{line}"
        what = problem if key is None else f"{key}: {problem}"
        super().__init__(f"{where}: {what}")
        self.path = path
        self.line = line
        self.key = key


class ToolNameCollision(SetupError):
    """Two sources claim the same tool name; a collision is an error, never an overwrite."""

    def __init__(self, name: str, existing_source: str, new_source: str) -> None:
        super().__init__(
            f"Tool name '{name}' from source '{new_source}' collides with the one from '{existing_source}'"
        )
        self.name = name
