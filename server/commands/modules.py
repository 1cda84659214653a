"""`toolkiln modules list | status | add | validate | approve | activate | disable | rollback | unload`.

Works on the data directory directly (no running server needed). A running server picks up every
change within `[modules] poll_interval_s`: an activated version is hot-loaded, a disabled one
unloaded. Approval is a human decision: `approve` shows what would be pinned and asks, unless
`--yes` says the operator has already decided (scripts); without a terminal and without `--yes`
it refuses. Every change is recorded in the module registry's events and the audit log.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from server.commands.base import Command, CommandContext, add_config_option
from server.config import Settings

__all__ = ["COMMAND"]

EXIT_USAGE = 2


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every module version, its state and why it is (not) serving")
    status = actions.add_parser("status", help="one version: validation problems, pins, recent events")
    status.add_argument("module", metavar="NAME@VERSION")
    add = actions.add_parser("add", help="copy a module directory into the data dir as a draft")
    add.add_argument("path", metavar="DIR", type=Path)
    validate = actions.add_parser("validate", help="manifest, lint, import and the module's tests in the sandbox")
    validate.add_argument("module", metavar="NAME@VERSION")
    approve = actions.add_parser("approve", help="approve a validated version (pins every file and tool)")
    approve.add_argument("module", metavar="NAME@VERSION")
    approve.add_argument("--yes", action="store_true", help="do not ask: the operator has decided")
    activate = actions.add_parser("activate", help="serve an approved version (a running server hot-loads it)")
    activate.add_argument("module", metavar="NAME@VERSION")
    disable = actions.add_parser("disable", help="stop a version until it is validated and approved again")
    disable.add_argument("module", metavar="NAME@VERSION")
    disable.add_argument("--reason", default="disabled by an operator")
    rollback = actions.add_parser("rollback", help="serve the previous approved version of a module")
    rollback.add_argument("name", metavar="NAME")
    unload = actions.add_parser("unload", help="stop serving a module (its version stays approved)")
    unload.add_argument("name", metavar="NAME")
    for action in (listing, status, add, validate, approve, activate, disable, rollback, unload):
        action.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")
        action.add_argument("--json", action="store_true", help="print JSON")


def _print(args: argparse.Namespace, text: str, data: Any) -> None:
    print(json.dumps(data, default=str) if args.json else text)


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problems(report: dict[str, Any]) -> list[str]:
    return [
        f"  [{p['stage']}] {p['where']}: {p['what']}" + (f"\n      fix: {p['fix']}" if p.get("fix") else "")
        for p in report.get("problems") or []
    ]


def _copy_in(lifecycle: Any, source: Path) -> Any:
    from modules.approval import hash_files
    from modules.manifest import load_manifest

    manifest = load_manifest(source)
    settings = lifecycle.settings
    hash_files(source, max_files=settings.max_files, max_file_bytes=settings.max_file_bytes)
    target = lifecycle.directory(manifest.ref)
    if target.exists():
        from modules.lifecycle import ModuleStateError

        raise ModuleStateError(f"{manifest.ref} already exists in {target}; give the new code a new version")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True)
    return manifest.ref


async def _run_async(settings: Settings, args: argparse.Namespace) -> int:
    from modules.admin_tools import describe_record
    from modules.approval_elicit import approval_question
    from modules.lifecycle import ModuleLifecycle
    from modules.manifest import ModuleManifest, ModuleRef
    from modules.registry import ModuleRegistry
    from modules.source import ledger_audit, sandbox_starter
    from server.audit.ledger import Ledger

    actor = f"{getpass.getuser()} (cli)"
    data_dir = settings.server.data_dir
    registry = await ModuleRegistry.open(data_dir)
    ledger = Ledger(settings)
    try:
        ledger.open()
        lifecycle = ModuleLifecycle(
            data_dir, registry, settings.modules, start_worker=sandbox_starter(), audit=ledger_audit(ledger)
        )
        action = args.action
        if action == "list":
            rows = [describe_record(record, {}) for record in await lifecycle.scan()]
            lines = [f"{row['module']:<32} {row['state']:<10} {row['why']}" for row in rows] or ["no modules"]
            _print(args, "\n".join(lines), rows)
            return 0
        if action == "add":
            ref = await anyio.to_thread.run_sync(_copy_in, lifecycle, args.path)
            await lifecycle.record(ref)
            _print(args, f"added {ref} as a draft; next: toolkiln modules validate {ref}", {"module": str(ref)})
            return 0
        if action == "rollback":
            ref = await lifecycle.rollback(args.name, actor=actor)
            _print(args, f"{args.name} now serves {ref}", {"module": str(ref)})
            return 0
        if action == "unload":
            ref = await lifecycle.unload(args.name, actor=actor)
            _print(args, f"{ref} unloaded; it stays approved", {"module": str(ref)})
            return 0
        ref = ModuleRef.parse(args.module)
        if action == "status":
            record = await lifecycle.record(ref)
            data = describe_record(record, {})
            data["events"] = [
                {"at": _when(e.at), "version": e.version, "event": e.event, "actor": e.actor, "detail": e.detail}
                for e in await registry.events(ref.name, limit=20)
            ]
            lines = [f"{ref}: {record.state} — {data['why']}"]
            lines += _problems(record.validation or {})
            lines += [f"  {e['at']} {e['version']} {e['event']} by {e['actor']}" for e in data["events"]]
            _print(args, "\n".join(lines), data)
            return 0
        if action == "validate":
            report = await lifecycle.validate(ref, actor=actor)
            head = f"{ref} validated; next: toolkiln modules approve {ref}" if report["passed"] else f"{ref} failed:"
            _print(args, "\n".join([head, *_problems(report)]), report)
            return 0 if report["passed"] else 1
        if action == "approve":
            pins = await lifecycle.pins_for(ref)
            record = await lifecycle.record(ref)
            assert record.manifest is not None
            print(approval_question(ref, ModuleManifest.stored(record.manifest), pins), file=sys.stderr)
            if not args.yes:
                if not sys.stdin.isatty():
                    print("toolkiln: not approved: no terminal to ask on; pass --yes to approve", file=sys.stderr)
                    return EXIT_USAGE
                answer = await anyio.to_thread.run_sync(input, "Approve? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("not approved", file=sys.stderr)
                    return 1
            await lifecycle.approve(ref, actor=actor, expect_digest=pins.digest)
            _print(args, f"{ref} approved (digest {pins.digest[:16]}); next: toolkiln modules activate {ref}",
                   {"module": str(ref), "digest": pins.digest})  # fmt: skip
            return 0
        if action == "activate":
            await lifecycle.activate(ref, actor=actor)
            _print(args, f"{ref} is active; a running server loads it within a poll interval", {"module": str(ref)})
            return 0
        await lifecycle.disable(ref, actor=actor, reason=args.reason)
        _print(args, f"{ref} disabled", {"module": str(ref)})
        return 0
    finally:
        ledger.close()
        await registry.close()


def _run(ctx: CommandContext) -> int:
    from modules.lifecycle import ModuleStateError
    from modules.manifest import ManifestInvalid

    try:
        return anyio.run(_run_async, ctx.settings, ctx.args)
    except (ModuleStateError, ManifestInvalid, ValueError) as exc:
        print(f"toolkiln: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1


COMMAND = Command(
    name="modules",
    help="validate, approve, activate, disable and roll back sandboxed adapter modules",
    description="Manage modules in <data_dir>/modules/<name>/<version>/ (see also the modules_* admin tools).",
    configure=_configure,
    run=_run,
)
