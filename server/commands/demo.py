"""`toolkiln demo`: try toolkiln offline with a bundled example API."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from server.commands.base import Command, CommandContext

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=("stdio", "sse", "http"), default="stdio", help="default: stdio")
    parser.add_argument("--port", type=int, help="MCP port for sse/http (default 8765; 0 picks one)")
    parser.add_argument("--api-port", type=int, default=0, help="port of the example API (default: a free one)")
    parser.add_argument(
        "--data-dir", type=Path, help="where to keep the server's database (default: a temporary folder)"
    )


def _run(ctx: CommandContext) -> int:
    from server.demo.run import run_demo

    args = ctx.args
    with contextlib.suppress(KeyboardInterrupt):
        run_demo(args.transport, port=args.port, api_port=args.api_port, data_dir=args.data_dir)
    return 0


COMMAND = Command(
    name="demo",
    help="serve a bundled example API as MCP tools (offline, no setup)",
    description=(
        "Start a small example REST API (a bookshelf) on 127.0.0.1 and serve its OpenAPI 3.1 "
        "description through toolkiln, over stdio (default) or HTTP. Every tool is a real HTTP "
        "call to that API: path, query, header and cookie parameters, JSON, form and multipart bodies. "
        "To serve a real API instead: toolkiln serve --spec SPEC --base-url URL."
    ),
    configure=_configure,
    run=_run,
    needs_settings=False,
)
