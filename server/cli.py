"""`toolkiln` command line: serve, tools, call, init."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from server.config import DEFAULT_CONFIG_NAME, Settings, load_settings
from server.logs import configure_logging
from server.version import __version__
from tools.errors import ConfigError

__all__ = ["main"]

EXIT_USAGE = 2


def _config_path(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    env = os.environ.get("TOOLKILN_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolkiln",
        description="An MCP tool gateway: turns OpenAPI specs and native adapters into safe MCP tools.",
    )
    parser.add_argument("--version", action="version", version=f"toolkiln {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            metavar="FILE",
            help=f"TOML config file (default: $TOOLKILN_CONFIG, else ./{DEFAULT_CONFIG_NAME} if present)",
        )

    serve = commands.add_parser("serve", help="run the MCP server", description="Run the MCP server.")
    with_config(serve)
    serve.add_argument("--transport", choices=("stdio", "sse", "http"), default="stdio", help="default: stdio")
    serve.add_argument("--host", help="bind address for sse/http (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port for sse/http (default from config: 8765; 0 picks one)")
    serve.add_argument(
        "--conformance-fixtures",
        action="store_true",
        help="also serve the MCP conformance suite's fixture tools, resources and prompts",
    )

    def client_options(sub: argparse.ArgumentParser) -> None:
        with_config(sub)
        sub.add_argument("--url", help="talk to a running server at this Streamable HTTP URL instead of launching one")
        sub.add_argument(
            "--conformance-fixtures", action="store_true", help="launch the server with the fixture source"
        )

    tools = commands.add_parser(
        "tools",
        help="list the tools a client sees",
        description="Connect as an MCP client (launching `toolkiln serve` over stdio) and list the tools.",
    )
    client_options(tools)
    tools.add_argument("--json", action="store_true", help="print the tools/list result as JSON")

    call = commands.add_parser(
        "call",
        help="call one tool",
        description=(
            "Connect as an MCP client and call one tool. Arguments are k=v pairs (v is parsed as JSON "
            "when it is valid JSON, else taken as a string) or one --json object."
        ),
    )
    client_options(call)
    call.add_argument("name", help="tool name")
    call.add_argument("pairs", nargs="*", metavar="k=v", help="arguments")
    call.add_argument("--json", dest="json_args", metavar="OBJECT", help="arguments as one JSON object")

    init = commands.add_parser(
        "init", help="write a commented example config", description="Write a commented example config."
    )
    init.add_argument("--path", default=DEFAULT_CONFIG_NAME, help=f"where to write (default: {DEFAULT_CONFIG_NAME})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "init":
        from server.init_config import write_example

        return write_example(Path(args.path), force=args.force)
    try:
        settings = load_settings(_config_path(args.config))
    except ConfigError as exc:
        print(f"toolkiln: config error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.logging.level, redact_keys=settings.logging.redact_keys)
    if args.command == "serve":
        return _serve(settings, args)
    from server.client_cli import run_call, run_tools

    if args.command == "tools":
        return anyio.run(run_tools, settings, args)
    arguments = _call_arguments(args.pairs, args.json_args)
    if arguments is None:
        return EXIT_USAGE
    return anyio.run(run_call, settings, args, arguments)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from server.runtime import Runtime
    from server.sources import install_sources
    from server.transports import serve

    http_updates: dict[str, Any] = {}
    if args.host:
        http_updates["host"] = args.host
    if args.port is not None:
        http_updates["port"] = args.port
    if http_updates:
        settings = settings.model_copy(update={"http": settings.http.model_copy(update=http_updates)})
    runtime = Runtime(settings)
    install_sources(runtime, conformance_fixtures=args.conformance_fixtures)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, runtime, args.transport)
    return 0


def _call_arguments(pairs: Sequence[str], json_args: str | None) -> dict[str, Any] | None:
    if json_args is not None:
        if pairs:
            print("toolkiln: give arguments as k=v pairs or --json, not both", file=sys.stderr)
            return None
        try:
            parsed = json.loads(json_args)
        except ValueError as exc:
            print(f"toolkiln: --json is not valid JSON: {exc}", file=sys.stderr)
            return None
        if not isinstance(parsed, dict):
            print("toolkiln: --json must be a JSON object", file=sys.stderr)
            return None
        return parsed
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            print(f"toolkiln: argument {pair!r} is not of the form k=v", file=sys.stderr)
            return None
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments
