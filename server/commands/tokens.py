"""`toolkiln tokens create | list | revoke`: API tokens for HTTP callers.

Works on the database directly (no running server needed). A created token is printed once on
stdout; only its hash is stored. Revocation reaches a running server within `auth.token_cache_s`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime

import anyio

from server.commands.base import Command, CommandContext, add_config_option
from server.config import Settings

__all__ = ["COMMAND", "parse_duration"]

EXIT_USAGE = 2
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90s`, `15m`, `12h`, `30d` (or plain seconds) → seconds.

    Raises:
        ValueError: not a positive duration.
    """
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 3600, 90m, 12h, 30d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _config_here_too(parser: argparse.ArgumentParser) -> None:
    # `--config` is accepted before or after the action; SUPPRESS keeps an earlier value.
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token (printed once)")
    create.add_argument("--principal", required=True, help="who the token authenticates")
    create.add_argument("--roles", required=True, help="comma-separated roles, e.g. agent or developer,billing")
    create.add_argument("--label", help="a note to recognise the token by")
    create.add_argument("--expires-in", metavar="DURATION", help="e.g. 3600, 90m, 12h, 30d (default: never)")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id", metavar="ID")
    for action in (create, listing, revoke):
        _config_here_too(action)


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _run_async(settings: Settings, args: argparse.Namespace) -> int:
    from server.identity.tokens import TokenStore
    from server.storage import Storage

    storage = await Storage.open(settings.server.data_dir / "toolkiln.db")
    try:
        store = TokenStore(storage.db)
        if args.action == "create":
            roles = tuple(role.strip() for role in args.roles.split(",") if role.strip())
            expires = None if args.expires_in is None else parse_duration(args.expires_in)
            plaintext, token = await store.create(args.principal, roles, label=args.label, expires_in_s=expires)
            print(plaintext)
            print(
                f"created token {token.id} for {token.principal} (roles: {', '.join(roles)}; "
                f"expires: {_when(token.expires_at)}); it is shown only once",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            now = time.time()
            for token in await store.list():
                state = "revoked" if token.revoked_at else ("expired" if not token.active(now) else "active")
                if args.json:
                    record = {
                        "id": token.id,
                        "principal": token.principal,
                        "roles": list(token.roles),
                        "label": token.label,
                        "state": state,
                        "created_at": _when(token.created_at),
                        "expires_at": None if token.expires_at is None else _when(token.expires_at),
                    }
                    print(json.dumps(record))
                else:
                    label = f"  {token.label}" if token.label else ""
                    print(f"{token.id}  {state:<7}  {token.principal}  [{', '.join(token.roles)}]{label}")
            return 0
        if await store.revoke(args.token_id):
            print(f"revoked token {args.token_id}", file=sys.stderr)
            return 0
        print(f"toolkiln: no active token with id {args.token_id!r}", file=sys.stderr)
        return 1
    finally:
        await storage.close()


def _run(ctx: CommandContext) -> int:
    args = ctx.args
    if args.action == "create":
        from server.policy import PolicyHolder
        from tools.errors import ConfigError

        try:
            policy = PolicyHolder.from_settings(ctx.settings).current
            if args.expires_in is not None:
                parse_duration(args.expires_in)
        except (ConfigError, ValueError) as exc:
            print(f"toolkiln: {getattr(exc, 'message', exc)}", file=sys.stderr)
            return EXIT_USAGE
        roles = [role.strip() for role in args.roles.split(",") if role.strip()]
        unknown = [role for role in roles if role not in policy.roles]
        if not roles or unknown:
            known = ", ".join(sorted(policy.roles))
            print(f"toolkiln: unknown role(s) {unknown or '(none given)'}; known roles: {known}", file=sys.stderr)
            return EXIT_USAGE
    return anyio.run(_run_async, ctx.settings, args)


COMMAND = Command(
    name="tokens",
    help="create, list and revoke API tokens for HTTP clients",
    description="Manage the bearer API tokens HTTP and SSE clients authenticate with ([auth] api_tokens = true).",
    configure=_configure,
    run=_run,
)
