"""`toolkiln serve`: run the MCP server."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

import anyio

from server.commands.base import Command, CommandContext, add_config_option
from tools.openapi.cli import add_spec_options, specs_from_args

__all__ = ["COMMAND"]

_STARTUP_DEADLINE_S = 10.0


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--transport", choices=("stdio", "sse", "http"), default="stdio", help="default: stdio")
    parser.add_argument("--host", help="bind address for sse/http (default from config: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port for sse/http (default from config: 8765; 0 picks one)")
    parser.add_argument(
        "--conformance-fixtures",
        action="store_true",
        help="also serve the MCP conformance suite's fixture tools, resources and prompts",
    )
    add_spec_options(parser)


def _run(ctx: CommandContext) -> int:
    from server.runtime import Runtime
    from server.sources import install_sources
    from server.startup import end_startup_by
    from server.transports import serve

    args, settings = ctx.args, ctx.settings
    http_updates: dict[str, Any] = {}
    if args.host:
        http_updates["host"] = args.host
    if args.port is not None:
        http_updates["port"] = args.port
    if http_updates:
        settings = settings.model_copy(update={"http": settings.http.model_copy(update=http_updates)})
    try:
        specs = specs_from_args(args.specs)
    except ValueError as exc:
        print(f"toolkiln: {exc}", file=sys.stderr)
        return 2
    runtime = Runtime(settings)
    install_sources(runtime, conformance_fixtures=args.conformance_fixtures, specs=specs, watch=True)
    # Start-up ends once the first tools/list is answered (server.app; its wire form is the last
    # large allocation of start-up), or after a few seconds for a server nobody lists.
    end_startup_by(_STARTUP_DEADLINE_S)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, runtime, args.transport)
    return 0


COMMAND = Command(
    name="serve",
    help="run the MCP server",
    description="Run the MCP server over stdio (default), SSE or Streamable HTTP.",
    configure=_configure,
    run=_run,
    keeps_collector_paused=True,
)
