"""The `toolkiln` subcommands, one module each.

A command module exposes `COMMAND: Command`. Adding a command = a new module plus one line in
`ALL_COMMANDS`; `server.cli` builds the parser from this list.
"""

from __future__ import annotations

from server.commands.audit import COMMAND as AUDIT
from server.commands.base import Command, CommandContext
from server.commands.call import COMMAND as CALL
from server.commands.credentials import COMMAND as CREDENTIALS
from server.commands.demo import COMMAND as DEMO
from server.commands.doctor import COMMAND as DOCTOR
from server.commands.init import COMMAND as INIT
from server.commands.inspect import COMMAND as INSPECT
from server.commands.modules import COMMAND as MODULES
from server.commands.policy import COMMAND as POLICY
from server.commands.reload import COMMAND as RELOAD
from server.commands.serve import COMMAND as SERVE
from server.commands.stats import COMMAND as STATS
from server.commands.tokens import COMMAND as TOKENS
from server.commands.tools import COMMAND as TOOLS

__all__ = ["ALL_COMMANDS", "Command", "CommandContext"]

ALL_COMMANDS: tuple[Command, ...] = (
    SERVE,
    TOOLS,
    CALL,
    INIT,
    TOKENS,
    CREDENTIALS,
    POLICY,
    AUDIT,
    STATS,
    DEMO,
    INSPECT,
    RELOAD,
    DOCTOR,
    MODULES,
)
