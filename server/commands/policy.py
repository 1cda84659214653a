"""`toolkiln policy explain | check`: ask the policy engine, offline.

`explain` builds the same registry and policy the server would (same config, same sources) and
prints which rule decides for a principal, a tool and arguments; exit 0 = allowed, 1 = denied.
The principal's roles are `--roles` if given, else what the server would give it: the local
profile's roles if it is the local principal, the roles of its active API tokens, and the
policy's `principals` grants.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from server.commands.base import Command, CommandContext, add_config_option
from server.config import Settings

__all__ = ["COMMAND"]

EXIT_USAGE = 2


def _config_here_too(parser: argparse.ArgumentParser) -> None:
    # `--config` is accepted before or after the action; SUPPRESS keeps an earlier value.
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    explain = actions.add_parser("explain", help="which rule decides a call, and why")
    explain.add_argument("--principal", required=True)
    explain.add_argument("--tool", required=True)
    explain.add_argument("--args", default=None, metavar="JSON", help="the call's arguments as a JSON object")
    explain.add_argument("--roles", help="comma-separated roles to assume instead of looking them up")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain.add_argument(
        "--conformance-fixtures", action="store_true", help="include the conformance fixture tools, as serve does"
    )
    check = actions.add_parser("check", help="validate the policy and summarise it")
    for action in (explain, check):
        _config_here_too(action)


async def _token_roles(settings: Settings, principal: str) -> tuple[str, ...]:
    from server.identity.tokens import TokenStore
    from server.storage import Storage

    path = settings.server.data_dir / "toolkiln.db"
    if not path.exists():
        return ()
    storage = await Storage.open(path)
    try:
        return await TokenStore(storage.db).roles_of(principal)
    finally:
        await storage.close()


def _explain(ctx: CommandContext) -> int:
    from server.policy import Authorize, explain
    from server.runtime import Runtime
    from server.sources import install_sources
    from tools.model import Principal

    args = ctx.args
    arguments: dict[str, Any] | None = None
    if args.args is not None:
        try:
            parsed = json.loads(args.args)
        except ValueError as exc:
            print(f"toolkiln: --args is not valid JSON: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not isinstance(parsed, dict):
            print("toolkiln: --args must be a JSON object", file=sys.stderr)
            return EXIT_USAGE
        arguments = parsed
    runtime = Runtime(ctx.settings)
    install_sources(runtime, conformance_fixtures=args.conformance_fixtures)
    if args.roles is not None:
        roles = tuple(role.strip() for role in args.roles.split(",") if role.strip())
    else:
        found = set(anyio.run(_token_roles, ctx.settings, args.principal))
        if args.principal == runtime.identity.local_id:
            found.update(runtime.identity.local_roles)
        roles = tuple(sorted(found))
    principal = Principal(args.principal, roles, "cli")
    authorize = Authorize(runtime.policy, runtime.registry)
    result = explain(authorize, runtime.registry.get(args.tool), args.tool, principal, arguments)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.render())
    return 0 if result.decision.allowed else 1


def _check(ctx: CommandContext) -> int:
    from server.policy import PolicyHolder

    holder = PolicyHolder.from_settings(ctx.settings)
    policy = holder.current
    print(f"policy ok: {len(policy.roles)} roles, {len(policy.rules)} rules", end="")
    print(f" (file: {holder.file})" if holder.file is not None else "")
    for name in sorted(policy.roles):
        role = policy.roles[name]
        parents = f" inherits {', '.join(role.inherits)}" if role.inherits else ""
        print(f"  role {name}{parents}")
    return 0


def _run(ctx: CommandContext) -> int:
    from tools.errors import ConfigError

    try:
        return _explain(ctx) if ctx.args.action == "explain" else _check(ctx)
    except ConfigError as exc:
        print(f"toolkiln: config error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE


COMMAND = Command(
    name="policy",
    help="explain and check the access policy",
    description="Ask the policy engine which rule decides a call (explain) or validate the policy (check).",
    configure=_configure,
    run=_run,
)
