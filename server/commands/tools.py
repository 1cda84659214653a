"""`toolkiln tools`: list the tools as a client sees them."""

from __future__ import annotations

import argparse

import anyio

from server.commands.base import Command, CommandContext
from server.commands.client_options import add_client_options

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    parser.add_argument("--json", action="store_true", help="print the tools/list result as JSON")


def _run(ctx: CommandContext) -> int:
    from server.client_cli import run_tools

    return anyio.run(run_tools, ctx.settings, ctx.args)


COMMAND = Command(
    name="tools",
    help="list the tools a client sees",
    description="Connect as an MCP client (launching `toolkiln serve` over stdio) and list the tools.",
    configure=_configure,
    run=_run,
    keeps_collector_paused=True,
)
