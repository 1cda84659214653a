"""`toolkiln reload`: make running servers rebuild their OpenAPI sources.

Each `toolkiln serve` with OpenAPI sources registers itself in `<data_dir>/run/` and rebuilds on
SIGHUP (see `tools.openapi.reload`); this command signals every live one that uses the same
config (the same data directory). A source whose spec no longer loads keeps its last good tools
and logs why. Exit status 0 when at least one server was signalled, 1 when none runs.
"""

from __future__ import annotations

import argparse

from server.commands.base import Command, CommandContext, add_config_option

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)


def _run(ctx: CommandContext) -> int:
    from tools.openapi.reload import RUN_DIR_NAME, signal_servers

    run_dir = ctx.settings.server.data_dir / RUN_DIR_NAME
    signalled, stale = signal_servers(run_dir)
    for path in stale:
        print(f"removed a stale registration: {path.name}")
    if not signalled:
        print(f"no running toolkiln server with OpenAPI sources found in {run_dir}")
        return 1
    pids = ", ".join(str(pid) for pid in signalled)
    print(f"reload requested: {len(signalled)} server(s) (pid {pids})")
    return 0


COMMAND = Command(
    name="reload",
    help="rebuild the OpenAPI sources of running servers",
    description="Signal every running `toolkiln serve` with the same data directory to reload its "
    "OpenAPI specs; a spec that fails to load keeps its last good tools.",
    configure=_configure,
    run=_run,
)
