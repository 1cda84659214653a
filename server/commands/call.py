"""`toolkiln call NAME k=v… | --json '{…}'`: call one tool as a client would."""

from __future__ import annotations

import argparse
import json
import math
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

    `NaN`, `Infinity` and numbers too big for a float are not JSON a server can receive, so as a
    value they stay strings and inside --json they are an error.

    Raises:
        ValueError: naming what is wrong with the arguments.
    """
    if json_args is not None:
        if pairs:
            raise ValueError("give arguments as k=v pairs or --json, not both")
        try:
            parsed = _strict_json(json_args)
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
        if key in arguments:
            raise ValueError(f"argument {key!r} is given more than once")
        try:
            arguments[key] = _strict_json(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


def _strict_json(text: str) -> Any:
    """`json.loads` without non-standard constants, floats that overflow or duplicate keys."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit in a float")
    return value


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
    keeps_collector_paused=True,
)
