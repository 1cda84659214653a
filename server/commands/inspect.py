"""`toolkiln inspect SPEC`: how an OpenAPI document converts, operation by operation.

Nothing is served and no upstream is called: the spec is loaded and converted exactly as
`serve` would, and every operation is printed as converted (tool name, schema bytes) or skipped
(with the reason). SPEC may also name a configured source, whose include/exclude and prefix then
apply. Exit status 0 when the document loads, 2 when it does not (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

from server.commands.base import Command, CommandContext, add_config_option

__all__ = ["COMMAND"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("spec", metavar="SPEC", help="a spec file or http(s) URL, or the name of a configured source")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--base-url", metavar="URL", help="the upstream base URL to assume (default: the spec's)")
    parser.add_argument("--prefix", help="a tool-name prefix to apply")


def _run(ctx: CommandContext) -> int:
    from pydantic import ValidationError

    from tools.errors import SetupError
    from tools.openapi.build import build_spec
    from tools.openapi.settings import OpenApiSourceSettings

    args, settings = ctx.args, ctx.settings
    config_dir = settings.source_path.parent if settings.source_path is not None else None
    configured = next((s for s in settings.sources if s.source_name == args.spec), None)
    updates = {k: v for k, v in (("base_url", args.base_url), ("prefix", args.prefix)) if v is not None}
    try:
        if configured is not None:
            source = OpenApiSourceSettings.model_validate({**configured.model_dump(), **updates})
            base_dir = config_dir
        else:
            source = OpenApiSourceSettings.model_validate({"spec": args.spec, **updates})
            base_dir = None
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"toolkiln: {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    try:
        built = build_spec(source, base_dir=base_dir)
    except SetupError as exc:
        print(f"toolkiln: {exc.message}", file=sys.stderr)
        return 2
    report = built.conversion.report
    if args.json:
        json.dump(report.as_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.render())
    return 0


COMMAND = Command(
    name="inspect",
    help="show how an OpenAPI spec converts to tools",
    description="Load and convert an OpenAPI document without serving it; print every operation as "
    "converted (tool name, schema size) or skipped (reason).",
    configure=_configure,
    run=_run,
    keeps_collector_paused=True,
)
