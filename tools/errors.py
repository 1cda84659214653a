"""The one exception tree of toolkiln.

Every failure a tool call can meet is one of these. Third-party errors (httpx, sqlite, jsonschema)
are translated into them at the boundary where they occur; exactly one function,
`server.wire.to_wire`, decides how each reaches the client::

    ToolkilnError
    ├── ProtocolFault                 → JSON-RPC error (code, message)
    │   └── UnknownTool               → -32602 "Unknown tool: NAME"
    │       └── ToolHidden            → the same bytes: a denied tool looks non-existent
    ├── ToolFailure                   → CallToolResult(isError=True, text=message)
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

__all__ = [
    "ConfigError",
    "InvalidArguments",
    "ProtocolFault",
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


class ToolkilnError(Exception):
    """Root of every error toolkiln raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolFault(ToolkilnError):
    """A fault in the request itself; answered with a JSON-RPC error."""

    code: int = INVALID_PARAMS


class UnknownTool(ProtocolFault):
    """No tool of that name is visible to the caller."""

    code = INVALID_PARAMS

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {name}")
        self.name = name


class ToolHidden(UnknownTool):
    """The tool exists but the caller may not see it; the wire form equals `UnknownTool`."""


class ToolFailure(ToolkilnError):
    """The call was well-formed but the tool could not do its job; answered with `isError`."""


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
