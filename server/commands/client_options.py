"""Options shared by the commands that act as MCP clients of the configured server."""

from __future__ import annotations

import argparse

from server.commands.base import add_config_option
from tools.openapi.cli import add_spec_options

__all__ = ["add_client_options"]


def add_client_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--url", help="talk to a running server at this Streamable HTTP URL instead of launching one")
    parser.add_argument("--conformance-fixtures", action="store_true", help="launch the server with the fixture source")
    # Handed to the `toolkiln serve` launched over stdio, so one command tries a spec end to end.
    add_spec_options(parser)
