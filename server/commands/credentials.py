"""`toolkiln credentials set | list | delete | rotate-key`: the encrypted upstream credentials.

Works on the store directly (no running server needed; a running one sees changes at its next
call). A value is read from stdin or a hidden prompt, never from the command line, where it
would sit in shell history and the process table.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import TYPE_CHECKING

from server.commands.base import Command, CommandContext, add_config_option

if TYPE_CHECKING:
    from credentials.vault import Vault

__all__ = ["COMMAND"]

EXIT_USAGE = 2
_KINDS = ("token", "basic", "oauth-client", "oauth-refresh")


def _config_here_too(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    put = actions.add_parser("set", help="store a credential (value from stdin or a hidden prompt)")
    put.add_argument("name", metavar="NAME", help="the handle sources refer to ([sources.auth.*] credential)")
    put.add_argument("--origin", required=True, help="the only upstream origin it may be sent to")
    put.add_argument("--principal", help="whose credential it is (default: shared by every caller)")
    put.add_argument("--kind", choices=_KINDS, default="token", help="default: token (API key or bearer token)")
    put.add_argument("--username", help="basic: the user name")
    put.add_argument("--client-id", help="oauth-client / oauth-refresh: the OAuth client id")
    put.add_argument("--token-url", help="oauth-*: the token endpoint (trusted, sealed with the credential)")
    listing = actions.add_parser("list", help="names, owners, origins, kinds and ages (never values)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    delete = actions.add_parser("delete", help="delete a credential")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--principal", help="the owner (default: the shared one)")
    actions.add_parser("rotate-key", help="re-encrypt every credential under a new key (resumable)")
    for action in actions.choices.values():
        _config_here_too(action)


def _read_values(kind: str) -> list[str]:
    """The secret value(s): a refresh token may be followed by a client secret on a second line."""
    wanted = ["client secret"] if kind == "oauth-client" else ["password"] if kind == "basic" else ["value"]
    if kind == "oauth-refresh":
        wanted = ["refresh token", "client secret (empty for a public client)"]
    if sys.stdin.isatty():
        return [getpass.getpass(f"{label}: ") for label in wanted]
    lines = sys.stdin.read().splitlines()
    return [line.strip() for line in lines[: len(wanted)]]


def _age(epoch: float) -> str:
    seconds = max(0.0, time.time() - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _set(ctx: CommandContext) -> int:
    from credentials.store import normalize_origin

    args = ctx.args
    try:
        origin = normalize_origin(args.origin)
    except ValueError as exc:
        print(f"toolkiln: --origin: {exc}", file=sys.stderr)
        return EXIT_USAGE
    kind = args.kind
    attrs: dict[str, str] = {}
    if kind == "basic":
        if not args.username:
            print("toolkiln: --kind basic needs --username", file=sys.stderr)
            return EXIT_USAGE
        attrs["username"] = args.username
    if kind.startswith("oauth-"):
        if not args.client_id:
            print(f"toolkiln: --kind {kind} needs --client-id", file=sys.stderr)
            return EXIT_USAGE
        attrs["client_id"] = args.client_id
        if args.token_url:
            attrs["token_url"] = args.token_url
    values = _read_values(kind)
    if not values or not values[0]:
        print("toolkiln: no value given on stdin or at the prompt", file=sys.stderr)
        return EXIT_USAGE
    field = {"token": "value", "basic": "password", "oauth-client": "client_secret"}.get(kind, "refresh_token")
    secrets = {field: values[0]}
    if kind == "oauth-refresh" and len(values) > 1 and values[1]:
        secrets["client_secret"] = values[1]
    vault = _vault(ctx)
    try:
        vault.put(args.name, args.principal or "", origin, kind, attrs, secrets)
    finally:
        vault.close()
    owner = f"principal {args.principal}" if args.principal else "shared"
    print(f"stored credential {args.name} ({kind}, {owner}) for {origin}", file=sys.stderr)
    return 0


def _list(ctx: CommandContext) -> int:
    vault = _vault(ctx)
    store = vault.store(create=False)
    rows = [] if store is None else store.all()
    vault.close()
    for row in rows:
        owner = row.owner or "(shared)"
        if ctx.args.json:
            record = {
                "name": row.name,
                "owner": row.owner or None,
                "origin": row.origin,
                "kind": row.kind,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "key_id": row.key_id,
            }
            print(json.dumps(record))
        else:
            ages = f"created {_age(row.created_at)} ago, updated {_age(row.updated_at)} ago"
            print(f"{row.name}  {owner}  {row.origin}  {row.kind}  {ages}")
    return 0


def _delete(ctx: CommandContext) -> int:
    vault = _vault(ctx)
    store = vault.store(create=False)
    deleted = store is not None and store.delete(ctx.args.name, ctx.args.principal or "")
    vault.close()
    if deleted:
        print(f"deleted credential {ctx.args.name}", file=sys.stderr)
        return 0
    print(f"toolkiln: no credential {ctx.args.name!r} for {ctx.args.principal or '(shared)'}", file=sys.stderr)
    return 1


def _rotate(ctx: CommandContext) -> int:
    from credentials.rotate import describe, rotate_key

    vault = _vault(ctx)
    try:
        rotation = rotate_key(vault)
        print(describe(rotation, vault.ring()), file=sys.stderr)
    finally:
        vault.close()
    return 1 if rotation.unreadable else 0


def _vault(ctx: CommandContext) -> Vault:
    from credentials.vault import Vault

    settings = ctx.settings
    credentials, data_dir = settings.credentials, settings.server.data_dir
    return Vault(credentials.db_path(data_dir), credentials.key_file(data_dir))


def _run(ctx: CommandContext) -> int:
    action = ctx.args.action
    if action == "set":
        return _set(ctx)
    if action == "list":
        return _list(ctx)
    if action == "delete":
        return _delete(ctx)
    return _rotate(ctx)


COMMAND = Command(
    name="credentials",
    help="store, list, delete and re-key the encrypted upstream credentials",
    description=(
        "Manage the credentials OpenAPI sources inject into upstream requests ([sources.auth.*]). "
        "Values are encrypted (MultiFernet) and bound to one origin and owner."
    ),
    configure=_configure,
    run=_run,
)
