"""What a subcommand is: a parser builder and a runner."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from server.config import DEFAULT_CONFIG_NAME, Settings

__all__ = ["Command", "CommandContext", "add_config_option"]


@dataclass(frozen=True)
class CommandContext:
    """What `server.cli` hands a command: its parsed arguments and, if it needs them, settings."""

    args: argparse.Namespace
    settings: Settings


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    # Adds the command's own options to its subparser.
    configure: Callable[[argparse.ArgumentParser], None]
    # Runs the command; returns the process exit code.
    run: Callable[[CommandContext], int]
    description: str | None = None
    # False for commands that must work without a readable config (e.g. `init`).
    needs_settings: bool = True
    # True for commands that build a large heap and either return soon or end start-up themselves
    # (`server.startup.end_startup`): the garbage collector stays paused while they run. Others
    # start with it running, so a long-lived command never runs without it.
    keeps_collector_paused: bool = False


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML config file (default: $TOOLKILN_CONFIG, else ./{DEFAULT_CONFIG_NAME} if present)",
    )
