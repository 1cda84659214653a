"""A real toolkiln HTTP server inside the test's event loop, on a loopback port.

The test keeps the `Runtime`, so it can change the registry while real clients are connected
and count what the server executed. The socket is bound before uvicorn starts, so clients that
connect early wait in the listen backlog instead of the test polling for readiness.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from server.config import ServerSettings, Settings
from server.runtime import Runtime
from server.transports import build_http_app, build_sse_app
from tools.model import CallContext, Tool, ToolResult


def make_runtime(data_dir: Path) -> Runtime:
    return Runtime(Settings(server=ServerSettings(data_dir=data_dir)))


@asynccontextmanager
async def serve_in_process(runtime: Runtime, *, transport: str = "http") -> AsyncIterator[str]:
    """Serve `runtime` over Streamable HTTP (or SSE) on 127.0.0.1; yields the endpoint URL."""
    app = build_sse_app(runtime) if transport == "sse" else build_http_app(runtime)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    path = runtime.settings.http.path if transport == "http" else "/sse"
    async with runtime.running(), anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        try:
            yield f"http://127.0.0.1:{port}{path}"
        finally:
            server.should_exit = True
    sock.close()


@dataclass
class CountingTool:
    """A tool with typed arguments that records every execution (to prove refusals never ran)."""

    name: str = "typed_echo"
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "flag": {"type": "boolean"},
                "label": {"type": "string"},
                "note": {"type": ["string", "null"]},
            },
            "required": ["count"],
        }

    async def run(self, arguments: Mapping[str, Any], _: CallContext) -> ToolResult:
        self.calls.append(dict(arguments))
        return ToolResult.text(f"count={arguments['count']}")

    def tool(self) -> Tool:
        return Tool(
            name=self.name,
            description="Echoes its typed arguments",
            input_schema=self.schema,
            executor=self.run,
            source="e2e",
        )
