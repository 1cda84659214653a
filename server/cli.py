"""`toolkiln` command line. Each subcommand lives in `server.commands`.

Importing this module is cheap: the command modules, settings and logging (and through them the
MCP SDK) are imported inside `main`, after the garbage collector is paused for start-up
(`server.startup` says why).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from server.startup import end_startup, pause_collector

__all__ = ["EXIT_USAGE", "main"]

EXIT_USAGE = 2


def config_path(arg: str | None) -> Path | None:
    """--config, else $TOOLKILN_CONFIG, else ./toolkiln.toml when it exists, else built-in defaults."""
    from server.config import DEFAULT_CONFIG_NAME

    if arg:
        return Path(arg)
    env = os.environ.get("TOOLKILN_CONFIG")
    if env:
        return Path(env)
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def _parser() -> argparse.ArgumentParser:
    from server.commands import ALL_COMMANDS
    from server.version import __version__

    parser = argparse.ArgumentParser(
        prog="toolkiln",
        description="An MCP tool gateway: turns OpenAPI specs and native adapters into safe MCP tools.",
    )
    parser.add_argument("--version", action="version", version=f"toolkiln {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in ALL_COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.description or command.help)
        command.configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    pause_collector()
    try:
        return _main(argv)
    finally:
        end_startup()


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    from server.commands import ALL_COMMANDS, CommandContext
    from server.config import Settings, load_settings
    from server.logs import configure_logging
    from tools.errors import ConfigError, SetupError

    command = next(c for c in ALL_COMMANDS if c.name == args.command)
    settings = Settings()
    if command.needs_settings:
        try:
            settings = load_settings(config_path(getattr(args, "config", None)))
        except ConfigError as exc:
            print(f"toolkiln: config error: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
    level = os.environ.get("TOOLKILN_LOG_LEVEL", settings.logging.level)
    configure_logging(level, redact_keys=settings.logging.redact_keys)
    if not command.keeps_collector_paused:
        end_startup()
    try:
        return command.run(CommandContext(args=args, settings=settings))
    except SetupError as exc:
        # Start-up problems (a bad policy file, a spec that will not load) are the operator's to fix.
        print(f"toolkiln: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
