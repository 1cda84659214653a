"""Build a real toolkiln runtime around test tools and talk to it with the SDK `Client`.

The server is the production one (`server.app.build_server` over `Runtime`); only the tool source
is the test's own. `connect` uses the SDK's in-process transports: `mode="legacy"` runs the
JSON-RPC stream loop of the handshake era, `mode="auto"` the 2026-07-28 per-request path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client

from server.app import build_server
from server.config import ServerSettings, Settings
from server.pipeline import Step
from server.runtime import Runtime
from tools.model import CallContext, Principal, Tool, ToolOutcome, ToolResult

__all__ = ["ECHO_SCHEMA", "HideTools", "connect", "echo", "make_runtime", "make_tool"]

SOURCE = "test"
ECHO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}
Executor = Callable[[Mapping[str, Any], CallContext], Awaitable[ToolOutcome]]


async def echo(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text(str(arguments.get("text", "")))


def make_tool(
    name: str,
    executor: Executor = echo,
    schema: dict[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Tool:
    return Tool(
        name=name,
        description=f"test tool {name}",
        input_schema=ECHO_SCHEMA if schema is None else schema,
        executor=executor,
        source=SOURCE,
        meta=meta or {},
    )


class HideTools(Step):
    """A visibility rule for tests: the named tools exist but nobody may see them."""

    name = "hide"

    def __init__(self, *names: str) -> None:
        self.names = frozenset(names)

    def visible(self, tool: Tool, principal: Principal) -> bool:
        return tool.name not in self.names


def make_runtime(
    data_dir: Path,
    tools: Sequence[Tool],
    *,
    extra_steps: Sequence[Step] = (),
    call_timeout_s: float = 30.0,
) -> Runtime:
    settings = Settings(server=ServerSettings(data_dir=data_dir, call_timeout_s=call_timeout_s))
    runtime = Runtime(settings, extra_steps=extra_steps)
    runtime.registry.replace_source(SOURCE, list(tools))
    return runtime


@asynccontextmanager
async def connect(runtime: Runtime, mode: str = "auto") -> AsyncIterator[Client]:
    async with runtime.running(), Client(build_server(runtime), mode=mode) as client:
        yield client
