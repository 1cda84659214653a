"""`toolkiln doctor`: what is missing before the configured sources can work.

Checks, in order: the config (it loaded, or the CLI already said why not), the credential key
and store (every row readable, rotation finished), the module sandbox tier, each source (its spec converts, its
`[sources.auth]` handles resolve to schemes and to stored credentials of the right kind and
origin), and whether each upstream answers at all. Prints one line per finding and exits 1 when
anything needs fixing. It never prints a secret.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from server.commands.base import Command, CommandContext, add_config_option

if TYPE_CHECKING:
    from credentials.vault import Vault
    from tools.openapi.settings import OpenApiSourceSettings

__all__ = ["COMMAND"]


@dataclass
class Findings:
    problems: int = 0
    lines: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.lines.append(f"ok       {text}")

    def missing(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"MISSING  {text}")


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("--no-network", action="store_true", help="skip the upstream reachability checks")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per reachability check (default 5)")


def _keys(vault: Vault, found: Findings) -> None:
    from cryptography.fernet import InvalidToken

    from credentials.errors import CredentialSetupError

    store = vault.store(create=False)
    rows = [] if store is None else store.all()
    try:
        ring = vault.ring()
    except CredentialSetupError as exc:
        found.missing(f"credential key: {exc.message}")
        return
    if ring is None:
        if rows:
            found.missing(f"credential key: {len(rows)} encrypted credential(s) but no key ({vault.key_path})")
        else:
            found.missing(
                f"credential key: none yet ({vault.key_path}); `toolkiln init` or `credentials set` makes one"
            )
        return
    found.ok(f"credential key: {ring.origin} ({len(ring.keys)} key(s), primary {ring.primary_id})")
    unreadable = []
    for row in rows:
        try:
            ring.fernet.decrypt(row.ciphertext)
        except InvalidToken:
            unreadable.append(f"{row.name} ({row.owner or 'shared'})")
    if unreadable:
        found.missing(f"credentials that do not decrypt with the configured key: {', '.join(unreadable)}")
    elif rows:
        found.ok(f"credential store: {len(rows)} credential(s), all readable")
    pending = [row for row in rows if row.key_id != ring.primary_id]
    if pending or len(ring.keys) > 1:
        found.missing(f"key rotation unfinished ({len(pending)} row(s) under an old key): run `credentials rotate-key`")


def _source(source: OpenApiSourceSettings, base_dir: Path | None, vault: Vault, found: Findings) -> str | None:
    from credentials.errors import CredentialUnavailable
    from credentials.store import normalize_origin
    from tools.errors import SetupError
    from tools.openapi.auth import EXPECTED_KIND, resolve_schemes
    from tools.openapi.build import build_spec

    name = source.source_name
    try:
        built = build_spec(source, base_dir=base_dir)
    except SetupError as exc:
        found.missing(f"source {name}: spec does not load: {exc.message}")
        return None
    base_url = built.base_url
    if base_url is None:
        found.missing(f"source {name}: no base URL ({built.conversion.report.base_url_from})")
        return None
    found.ok(f"source {name}: {len(built.conversion.drafts)} tool(s), upstream {base_url}")
    origin = normalize_origin(base_url)
    try:
        uses = resolve_schemes(name, source.auth, built.conversion.security_schemes, origin)
    except SetupError as exc:
        found.missing(exc.message)
        return base_url
    for scheme, use in uses.items():
        handle = use.handle
        store = vault.store(create=False)
        owners = [] if store is None else store.owners_of(handle.credential)
        label = f"source {name}: scheme {scheme} → credential {handle.credential}"
        if handle.per_principal:
            listed = [o for o in owners if o]
            if listed:
                found.ok(f"{label}: stored for {', '.join(listed)}")
            else:
                found.missing(f"{label}: per-principal, stored for nobody (`credentials set --principal P`)")
            continue
        if "" not in owners:
            found.missing(f"{label}: not stored (`toolkiln credentials set {handle.credential} --origin {origin}`)")
            continue
        try:
            credential = vault.lookup(handle.credential, "", origin)
        except CredentialUnavailable as exc:
            found.missing(f"{label}: {exc.message}")
            continue
        if credential.kind not in EXPECTED_KIND[use.kind]:
            found.missing(f"{label}: a '{credential.kind}' credential, the scheme needs {EXPECTED_KIND[use.kind]}")
        else:
            found.ok(f"{label} ({credential.kind})")
    return base_url


def _sandbox(found: Findings) -> None:
    from modules.sandbox.report import sandbox_report

    report = sandbox_report()
    head, *details = report.lines()
    if report.tier == "refused":
        found.missing(head)
    else:
        found.ok(head)
    found.lines.extend(f"         {line}" for line in details)


def _reachable(name: str, base_url: str, allow: tuple[str, ...], timeout: float, found: Findings) -> None:
    import anyio
    import httpx

    from tools.errors import ToolkilnError
    from tools.openapi.upstream import Upstream

    async def probe() -> int:
        upstream = Upstream(base_url, allow_private_hosts=allow)
        try:
            request = upstream.request("GET", upstream.origin + (upstream.base_path or "/"), [], None)
            with anyio.fail_after(timeout):
                response = await upstream.client.send(request, stream=True)
                await response.aclose()
            return response.status_code
        finally:
            await upstream.aclose()

    try:
        status = anyio.run(probe)
    except (ToolkilnError, httpx.HTTPError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "message", None) or type(exc).__name__
        found.missing(f"source {name}: upstream {base_url} unreachable ({reason})")
        return
    found.ok(f"source {name}: upstream {base_url} answers (HTTP {status})")


def _run(ctx: CommandContext) -> int:
    from credentials.vault import Vault

    settings = ctx.settings
    found = Findings()
    where = settings.source_path or "built-in defaults"
    found.ok(f"config: {where}")
    data_dir = settings.server.data_dir
    vault = Vault(settings.credentials.db_path(data_dir), settings.credentials.key_file(data_dir))
    try:
        _keys(vault, found)
        _sandbox(found)
        base_dir = settings.source_path.parent if settings.source_path is not None else None
        if not settings.sources:
            found.ok("sources: none configured")
        for source in settings.sources:
            base_url = _source(source, base_dir, vault, found)
            if base_url is not None and not ctx.args.no_network:
                _reachable(source.source_name, base_url, source.allow_private_hosts, ctx.args.timeout, found)
    finally:
        vault.close()
    for line in found.lines:
        print(line)
    summary = "all checks passed" if not found.problems else f"{found.problems} problem(s) to fix"
    print(f"toolkiln doctor: {summary}", file=sys.stderr)
    return 1 if found.problems else 0


COMMAND = Command(
    name="doctor",
    help="check config, credential keys, credential handles and upstream reachability",
    description="Check what the configured sources need (config, key, credentials, upstreams); print what is missing.",
    configure=_configure,
    run=_run,
)
