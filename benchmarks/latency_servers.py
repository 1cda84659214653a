"""The two servers the latency benchmark compares, each serving the same trivial `echo` tool.

Run as a script by `bench_call_latency.py`:

    python benchmarks/latency_servers.py toolkiln|plain --transport stdio|http [--port N] [--data-dir DIR]
        [--config FILE]

`toolkiln` is the production path of `toolkiln serve` (runtime, full pipeline, transports, JSON logs
on stderr at info) with one extra source holding the tool; `plain` is the SDK's own `MCPServer`.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

TOOL_NAME = "echo"
TOOL_DESCRIPTION = "Return the given text unchanged."


def run_toolkiln(transport: str, port: int, data_dir: Path, config: Path | None) -> None:
    from server.config import load_settings
    from server.logs import configure_logging
    from server.runtime import Runtime
    from server.transports import serve
    from tools.model import CallContext, Tool, ToolResult

    # Defaults (or a config file, for diagnostic runs) with this run's data dir and port, and
    # logging at info as in production.
    settings = load_settings(config)
    settings = settings.model_copy(
        update={
            "server": settings.server.model_copy(update={"data_dir": data_dir}),
            "http": settings.http.model_copy(update={"port": port}),
            "logging": settings.logging.model_copy(update={"level": "info"}),
        }
    )
    configure_logging(settings.logging.level, redact_keys=settings.logging.redact_keys)

    async def echo(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
        return ToolResult.text(arguments["text"])

    runtime = Runtime(settings)
    runtime.registry.replace_source(
        "bench",
        [
            Tool(
                name=TOOL_NAME,
                description=TOOL_DESCRIPTION,
                input_schema={
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
                executor=echo,
                source="bench",
            )
        ],
    )
    anyio.run(serve, runtime, "http" if transport == "http" else "stdio")


def run_plain(transport: str, port: int) -> None:
    from mcp.server.mcpserver import MCPServer

    mcp: MCPServer[Any] = MCPServer("plain", log_level="INFO")

    # Unstructured, like toolkiln's result: one text block and nothing else.
    @mcp.tool(name=TOOL_NAME, description=TOOL_DESCRIPTION, structured_output=False)
    async def echo(text: str) -> str:
        return text

    if transport == "http":
        mcp.run("streamable-http", host="127.0.0.1", port=port)
    else:
        mcp.run("stdio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("toolkiln", "plain"))
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--config", type=Path, help="toolkiln config file (default: built-in defaults)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.kind == "plain":
            run_plain(args.transport, args.port)
        elif args.data_dir is not None:
            run_toolkiln(args.transport, args.port, args.data_dir, args.config)
        else:
            with tempfile.TemporaryDirectory(prefix="toolkiln-bench-") as tmp:
                run_toolkiln(args.transport, args.port, Path(tmp), args.config)


if __name__ == "__main__":
    main()
