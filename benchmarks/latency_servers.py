"""The two servers the latency benchmark compares, each serving the same trivial `echo` tool, and the
ideal OpenAPI-call server the OpenAPI benchmark measures beside toolkiln and FastMCP.

Run as a script by `bench_call_latency.py` and `bench_openapi.py`:

    python benchmarks/latency_servers.py toolkiln|plain --transport stdio|http [--port N] [--data-dir DIR]
        [--config FILE]
    python benchmarks/latency_servers.py ideal --output-schemas FILE [--transport stdio|http] [--port N]

`toolkiln` is the production path of `toolkiln serve` (runtime, full pipeline, transports, JSON logs
on stderr at info) with one extra source holding the tool; `plain` is the SDK's own `MCPServer`.
`ideal` is the SDK's `MCPServer` with `getItem` and `getReport` answering, without any upstream
call, the bodies `openapi_upstream.py` serves, built and parsed once at start, as `structuredContent`
plus their JSON text, each listing the `outputSchema` given for it in FILE (`{"getItem": {...},
"getReport": {...}}`, taken from toolkiln's `tools/list`): the least any server listing those
schemas can do for such a call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

# At module level: MCPServer reads a tool's return annotation by name from the module's globals.
from mcp_types import CallToolResult

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


def run_ideal(transport: str, port: int, output_schemas: Path) -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.tools import Tool
    from mcp_types import TextContent
    from openapi_upstream import large_body, small_body

    schemas = json.loads(output_schemas.read_text(encoding="utf-8"))

    def prebuilt(body: bytes) -> CallToolResult:
        text = body.decode()
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=json.loads(text))

    # The upstream answers the same body whatever the id; so does this server.
    item, report = prebuilt(small_body(1)), prebuilt(large_body(1))

    async def get_item(item_id: int) -> CallToolResult:
        return item

    async def get_report(report_id: int) -> CallToolResult:
        return report

    tools = []
    for name, fn in (("getItem", get_item), ("getReport", get_report)):
        tool = Tool.from_function(fn, name=name, description=f"{name}, answered from memory.")
        # Listed only: MCPServer checks a result against a schema it derived from a return type, never
        # against one set by hand, so the server does no more per call than hand back the prebuilt result.
        tool.fn_metadata.output_schema = schemas[name]
        tools.append(tool)
    mcp: MCPServer[Any] = MCPServer("ideal", log_level="INFO", tools=tools)
    if transport == "http":
        mcp.run("streamable-http", host="127.0.0.1", port=port)
    else:
        mcp.run("stdio")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("toolkiln", "plain", "ideal"))
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--config", type=Path, help="toolkiln config file (default: built-in defaults)")
    parser.add_argument("--output-schemas", type=Path, help="ideal: JSON file of the outputSchema per tool name")
    args = parser.parse_args()
    if args.kind == "ideal" and args.output_schemas is None:
        parser.error("ideal needs --output-schemas FILE")
    with contextlib.suppress(KeyboardInterrupt):
        if args.kind == "plain":
            run_plain(args.transport, args.port)
        elif args.kind == "ideal":
            run_ideal(args.transport, args.port, args.output_schemas)
        elif args.data_dir is not None:
            run_toolkiln(args.transport, args.port, args.data_dir, args.config)
        else:
            with tempfile.TemporaryDirectory(prefix="toolkiln-bench-") as tmp:
                run_toolkiln(args.transport, args.port, Path(tmp), args.config)


if __name__ == "__main__":
    main()
