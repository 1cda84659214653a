"""`toolkiln audit verify | tail | search | export`: read and prove the audit log.

Works on the audit database directly (a running server may keep writing meanwhile: readers never
block the writer in WAL mode). `verify` exits 0 when the chain is intact and 1 with the first bad
record otherwise; the others print one line per record, or JSON lines with `--jsonl`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from server.commands.base import Command, CommandContext, add_config_option

__all__ = ["COMMAND"]

EXIT_BROKEN = 1
EXIT_USAGE = 2


def _config_here_too(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML config file")


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = actions.add_parser("verify", help="prove the hash chain and checkpoints; name the first bad record")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    tail = actions.add_parser("tail", help="the newest records")
    tail.add_argument("-n", "--lines", type=int, default=20, help="how many (default 20)")
    search = actions.add_parser("search", help="records matching every given filter")
    search.add_argument("--principal")
    search.add_argument("--tool")
    search.add_argument("--status", help="e.g. allowed, denied, rate_limited, invalid, timeout, outcome_unknown")
    search.add_argument("--call-id")
    search.add_argument("--kind", choices=("intent", "outcome"))
    search.add_argument("--since", help="ISO-8601 UTC time, or a duration back from now: 90m, 12h, 7d")
    search.add_argument("--until", help="ISO-8601 UTC time")
    search.add_argument("--limit", type=int, default=1000)
    export = actions.add_parser("export", help="every record, for archiving or verifying elsewhere")
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    for action in (tail, search, export):
        action.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    for action in (verify, tail, search, export):
        _config_here_too(action)


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    from server.commands.tokens import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        return text
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _line(record: dict[str, Any]) -> str:
    kind = record.get("kind")
    head = f"{record.get('seq'):>8} {record.get('ts')} {kind:<7} {record.get('principal')} {record.get('tool')}"
    if kind == "outcome":
        latency = (record.get("latency_us") or 0) / 1000
        return f"{head} status={record.get('status')} cost={record.get('cost')} ms={latency:.3f}"
    return f"{head} args={json.dumps(record.get('arguments'), ensure_ascii=False)[:200]}"


def _print(records: Iterable[dict[str, Any]], jsonl: bool, out: Any = None) -> int:
    stream = out or sys.stdout
    count = 0
    for record in records:
        stream.write((json.dumps(record, ensure_ascii=False) if jsonl else _line(record)) + "\n")
        count += 1
    return count


def _run(ctx: CommandContext) -> int:
    from server.audit.keys import AuditKeyMissing
    from server.audit.ledger import LedgerPaths
    from server.audit.query import SearchFilter, export_records, search_records, tail_records
    from server.audit.verify import verify_chain

    args = ctx.args
    paths = LedgerPaths.from_settings(ctx.settings)
    if not paths.db.exists():
        print(f"toolkiln: no audit log at {paths.db}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "verify":
        try:
            report = verify_chain(paths.db, paths.key, paths.head)
        except AuditKeyMissing as exc:
            print(f"toolkiln: {exc.message}", file=sys.stderr)
            return EXIT_BROKEN
        if args.json:
            print(json.dumps({"ok": report.ok, "summary": report.summary(), **_report_fields(report)}))
        else:
            print(report.summary())
        return 0 if report.ok else EXIT_BROKEN
    if args.action == "tail":
        _print(tail_records(paths.db, args.lines), args.jsonl)
        return 0
    if args.action == "search":
        where = SearchFilter(
            principal=args.principal,
            tool=args.tool,
            status=args.status,
            call_id=args.call_id,
            kind=args.kind,
            since=_since(args.since),
            until=args.until,
        )
        _print(search_records(paths.db, where, limit=args.limit), args.jsonl)
        return 0
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            count = _print(export_records(paths.db), args.jsonl, handle)
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    else:
        _print(export_records(paths.db), args.jsonl)
    return 0


def _report_fields(report: Any) -> dict[str, Any]:
    return {
        "records": report.records,
        "last_seq": report.last_seq,
        "checkpoints": report.checkpoints,
        "head_seq": report.head_seq,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
    }


COMMAND = Command(
    name="audit",
    help="verify, tail, search or export the audit log",
    description="Prove the audit log's hash chain and signed checkpoints, or read its records.",
    configure=_configure,
    run=_run,
)
