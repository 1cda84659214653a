"""`toolkiln call NAME k=v… | --json '{…}'`: call one tool as a client would."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from server.commands.base import Command, CommandContext
from server.commands.client_options import add_client_options

__all__ = ["COMMAND", "parse_call_arguments"]

EXIT_USAGE = 2


def _configure(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    parser.add_argument("name", help="tool name")
    parser.add_argument("pairs", nargs="*", metavar="k=v", help="arguments")
    parser.add_argument("--json", dest="json_args", metavar="OBJECT", help="arguments as one JSON object")


def parse_call_arguments(pairs: Sequence[str], json_args: str | None) -> dict[str, Any]:
    """k=v pairs (v parsed as JSON when it is valid JSON, else a string) or one JSON object.

    Raises:
        ValueError: naming what is wrong with the arguments.
    """
    if json_args is not None:
        if pairs:
            raise ValueError("give arguments as k=v pairs or --json, not both")
        try:
            parsed = json.loads(json_args)
        except ValueError as exc:
            raise ValueError(f"--json is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError("--json must be a JSON object")
        return parsed
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {pair!r} is not of the form k=v")
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


def _run(ctx: CommandContext) -> int:
    from server.client_cli import run_call

    try:
        arguments = parse_call_arguments(ctx.args.pairs, ctx.args.json_args)
    except ValueError as exc:
        print(f"toolkiln: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return anyio.run(run_call, ctx.settings, ctx.args, arguments)


COMMAND = Command(
    name="call",
    help="call one tool",
    description=(
        "Connect as an MCP client and call one tool. Arguments are k=v pairs (v is parsed as JSON "
        "when it is valid JSON, else taken as a string) or one --json object."
    ),
    configure=_configure,
    run=_run,
)
