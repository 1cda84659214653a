"""`toolkiln init`: write a commented example config."""

from __future__ import annotations

import argparse
from pathlib import Path

from server.commands.base import Command, CommandContext
from server.config import DEFAULT_CONFIG_NAME

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", default=DEFAULT_CONFIG_NAME, help=f"where to write (default: {DEFAULT_CONFIG_NAME})")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def _run(ctx: CommandContext) -> int:
    from server.init_config import write_example

    return write_example(Path(ctx.args.path), force=ctx.args.force)


COMMAND = Command(
    name="init",
    help="write a commented example config",
    description="Write a commented example toolkiln.toml that loads as-is.",
    configure=_configure,
    run=_run,
    needs_settings=False,
)
