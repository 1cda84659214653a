"""Operations → tool drafts (name, text, schemas, annotations) plus an `OperationPlan` each.

`convert_document` walks the operations in document order and records every one in the report,
converted or skipped with its reason. Tool names are allocated for all operations before any
filtering, so including or excluding operations never renames the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

from tools.model import ToolAnnotations
from tools.openapi.arguments import Arguments, build_arguments, inline_target, pick_media
from tools.openapi.auth_schemes import read_security_schemes
from tools.openapi.budget import assemble, assembled_size, collapse_unions, fit_source_budget
from tools.openapi.document import SpecDocument
from tools.openapi.filters import excluded_reason
from tools.openapi.inline_defs import inline_single_use
from tools.openapi.naming import NameAllocator, operation_name
from tools.openapi.operation import Operation, OperationProblem, Parameter, read_operation_v3, security_of
from tools.openapi.plan import OperationPlan
from tools.openapi.refs import RefResolver
from tools.openapi.report import ConversionReport, OperationReport
from tools.openapi.schema import NO_DEFS, DefClosure, SchemaConverter, json_size
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.swagger2 import read_operation_v2
from tools.openapi.text import clean_text

__all__ = ["Conversion", "ToolDraft", "convert_document", "resolve_base_url"]

_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_TEMPLATE = re.compile(r"\{([^{}/]+)\}")
_MAX_NOTES = 12


@dataclass(frozen=True, slots=True)
class ToolDraft:
    """A tool minus its executor and source: what conversion decides."""

    name: str
    title: str | None
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: ToolAnnotations
    tags: tuple[str, ...]
    plan: OperationPlan
    input_bytes: int = 0
    output_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Conversion:
    drafts: tuple[ToolDraft, ...]
    report: ConversionReport
    # The spec's security schemes as plain data (`tools.openapi.auth_schemes`), for injection.
    security_schemes: Mapping[str, Any] = field(default_factory=dict)


def resolve_base_url(doc: SpecDocument, settings: OpenApiSourceSettings, spec_uri: str) -> tuple[str | None, str]:
    """The upstream base URL and where it came from. Server variables take their defaults only."""
    if settings.base_url:
        return settings.base_url.rstrip("/"), "config"
    from_url = spec_uri.lower().startswith(("http://", "https://"))
    if not doc.servers:
        if from_url:
            parts = urlsplit(spec_uri)
            return f"{parts.scheme}://{parts.netloc}", "the spec URL's origin (no servers in the spec)"
        return None, "no servers in the spec: set base_url"
    url = doc.servers[0].expanded()
    if "{" in url:
        return None, "the spec's server URL has variables without defaults: set base_url"
    if re.match(r"^https?://[^/?#]+", url, re.I):
        return url.rstrip("/"), "the spec's servers[0]"
    if from_url:
        return urljoin(spec_uri, url).rstrip("/"), "the spec's servers[0], relative to the spec URL"
    return None, f"the spec's server URL {url!r} is relative: set base_url"


def convert_document(
    doc: SpecDocument,
    resolver: RefResolver,
    settings: OpenApiSourceSettings,
    *,
    base_url: str | None = None,
    base_url_from: str = "",
    spec_bytes: int = 0,
) -> Conversion:
    """Every operation of `doc` as a draft tool or a skipped report entry."""
    converter = SchemaConverter(resolver, description_limit=settings.max_schema_description_chars)
    allocator = NameAllocator()
    names = []
    for entry in doc.operations:
        op_id = entry.raw.get("operationId") if isinstance(entry.raw, dict) else None
        base = operation_name(op_id if isinstance(op_id, str) else None, entry.method, entry.path)
        names.append(allocator.claim(settings.prefix + base, original=settings.prefix + (op_id or entry.label)))
    drafts: list[ToolDraft] = []
    reports: list[OperationReport] = []
    # An operation without its own `security` inherits the document's: the plan gets the answer.
    default_security = security_of(doc.security)
    for entry, name in zip(doc.operations, names, strict=True):
        raw = entry.raw if isinstance(entry.raw, dict) else {}
        op_id = raw.get("operationId") if isinstance(raw.get("operationId"), str) else None
        raw_tags = raw.get("tags")
        tags = raw_tags if isinstance(raw_tags, list) else []
        excluded = excluded_reason(
            settings.include,
            settings.exclude,
            operation_id=op_id,
            tags=[t for t in tags if isinstance(t, str)],
            path=entry.path,
            method=entry.method,
        )
        if excluded:
            reports.append(OperationReport(entry.label, "skipped", reason=excluded, operation_id=op_id))
            continue
        try:
            operation = (
                read_operation_v2(entry, doc.root, resolver)
                if doc.dialect == "2.0"
                else read_operation_v3(entry, resolver)
            )
            if operation.security is None and default_security is not None:
                operation = replace(operation, security=default_security)
            draft, report = _convert_operation(operation, name, converter, settings, entry.label)
        except OperationProblem as exc:
            reports.append(OperationReport(entry.label, "skipped", reason=str(exc), operation_id=op_id))
            continue
        reports.append(report)
        if draft is not None:
            drafts.append(draft)
    list_limit = settings.max_list_bytes or max(8 * spec_bytes, 1024 * 1024)
    drafts, reports = fit_source_budget(drafts, reports, list_limit)
    problems = list(doc.problems)
    if base_url is not None and base_url.lower().startswith("http://") and base_url_from != "config":
        problems.append(f"the spec's base URL {base_url} is plain http: requests travel unencrypted")
    if doc.webhooks:
        problems.append(f"{doc.webhooks} webhook(s) describe calls the API makes, not operations; not served")
    summary = ConversionReport(
        source=settings.source_name,
        spec=doc.origin,
        version=doc.version,
        title=clean_text(doc.title, 200, single_line=True).text,
        base_url=base_url,
        base_url_from=base_url_from,
        operations=tuple(reports),
        problems=tuple(problems),
    )
    schemes = read_security_schemes(doc.root, doc.dialect, doc.uri, resolver)
    return Conversion(drafts=tuple(drafts), report=summary, security_schemes=schemes)


def _undeclared_path_params(operation: Operation) -> tuple[tuple[Parameter, ...], list[str]]:
    declared = {p.name for p in operation.parameters if p.location == "path"}
    added = []
    for name in dict.fromkeys(_TEMPLATE.findall(operation.path)):
        if name not in declared:
            added.append(
                Parameter(
                    name=name,
                    location="path",
                    required=True,
                    description="",
                    schema={"type": "string"},
                    base="",
                    style="simple",
                    explode=False,
                )
            )
    notes = [f"path parameter {{{p.name}}} is not declared; taken as a string" for p in added]
    return (*operation.parameters, *added), notes


def _convert_operation(
    operation: Operation, name: str, converter: SchemaConverter, settings: OpenApiSourceSettings, label: str
) -> tuple[ToolDraft | None, OperationReport]:
    parameters, notes = _undeclared_path_params(operation)
    if len(parameters) != len(operation.parameters):
        operation = replace(operation, parameters=parameters)
    args = build_arguments(operation, converter, settings.max_schema_description_chars)
    notes = [*operation.notes, *notes, *args.notes]
    flags = set(args.flags)
    in_defs = converter.closure(args.refs)
    problems = list(dict.fromkeys([*args.problems, *in_defs.problems]))

    def skipped(reason: str) -> tuple[None, OperationReport]:
        return None, OperationReport(
            label, "skipped", reason=reason, operation_id=operation.operation_id, notes=_bounded(notes)
        )

    if problems:
        return skipped("; ".join(problems[:3]))
    input_top = _input_top(args)
    output_top, out_defs, accept, output_notes = _output(operation, converter)
    notes.extend(output_notes)
    for reached in (in_defs, out_defs):
        notes.extend(reached.notes)
        flags.update(reached.flags)
    budget = settings.max_tool_schema_bytes
    in_size = assembled_size(input_top, in_defs)
    out_size = assembled_size(output_top, out_defs) if output_top is not None else 0
    reason = None
    if in_size + out_size > budget and output_top is not None:
        reason = f"degraded: outputSchema dropped ({in_size + out_size:,} B is over the {budget:,} B budget)"
        output_top, out_size = None, 0
    input_schema = assemble(input_top, in_defs)
    size = in_size
    if size > budget:
        input_schema = collapse_unions(input_schema)
        size = json_size(input_schema)
        reason = f"degraded: outputSchema dropped and nested unions collapsed to fit the {budget:,} B budget"
        if size > budget:
            return skipped(f"inputSchema of {size:,} B exceeds the {budget:,} B budget even degraded")
    output_schema = inline_single_use(assemble(output_top, out_defs)) if output_top is not None else None
    description = _description(operation, settings.max_description_chars)
    flags.update(description.flags)
    title = clean_text(operation.summary, 120, single_line=True)
    plan = OperationPlan(
        method=operation.method,
        path=operation.path,
        operation_id=operation.operation_id,
        params=tuple(args.params),
        body=args.body,
        security=operation.security,
        accept=accept,
    )
    draft = ToolDraft(
        name=name,
        title=title.text or None,
        description=description.text or label,
        input_schema=input_schema,
        output_schema=output_schema,
        annotations=_annotations(operation.method, title.text or None),
        tags=tuple(clean_text(t, 64, single_line=True).text for t in operation.tags),
        plan=plan,
        input_bytes=size,
        output_bytes=out_size,
    )
    report = OperationReport(
        label,
        "converted",
        tool=name,
        reason=reason,
        schema_bytes=size + out_size,
        operation_id=operation.operation_id,
        notes=_bounded(notes),
        flags=tuple(sorted(flags)),
    )
    return draft, report


def _bounded(notes: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(notes))
    if len(unique) > _MAX_NOTES:
        unique = [*unique[: _MAX_NOTES - 1], f"… and {len(unique) - _MAX_NOTES + 1} more notes"]
    return tuple(unique)


def _input_top(args: Arguments) -> dict[str, Any]:
    top: dict[str, Any] = {"type": "object", "properties": args.properties}
    if args.required:
        top["required"] = list(dict.fromkeys(args.required))
    top["additionalProperties"] = False
    return top


def _response_order(status: str) -> tuple[int, str]:
    preferred = {"200": 0, "201": 1, "202": 2, "203": 3, "206": 4}
    if status in preferred:
        return preferred[status], status
    return (5 if status.isdigit() else 6), status


def _output(
    operation: Operation, converter: SchemaConverter
) -> tuple[dict[str, Any] | None, DefClosure, str | None, list[str]]:
    """(outputSchema top, its definitions, the Accept media type, notes)."""
    accept = None
    for response in sorted(operation.responses, key=lambda r: _response_order(r.status)):
        media = pick_media(response.content)
        if media is None:
            continue
        accept = accept or media.name
        name = media.name.split(";", 1)[0].strip().lower()
        if not (name == "application/json" or name.endswith("+json")) or media.schema is None:
            continue
        accept = media.name
        converted = converter.convert(media.schema, media.base)
        if converted.problems:
            return None, NO_DEFS, accept, [f"no outputSchema: {converted.problems[0]}"]
        schema, refs, inlined = inline_target(converter, converted.schema, set(converted.refs))
        if not _is_object(schema):
            return None, NO_DEFS, accept, []
        out_defs = converter.closure(refs)
        problems = [*(p for d in inlined for p in d.problems), *out_defs.problems]
        if problems:
            return None, NO_DEFS, accept, [f"no outputSchema: {problems[0]}"]
        return {**schema, "type": "object"}, out_defs, accept, [n for d in inlined for n in d.notes]
    return None, NO_DEFS, accept, []


def _is_object(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "object":
        return True
    return kind is None and "properties" in schema and not schema.keys() & {"anyOf", "oneOf", "allOf", "$ref", "not"}


def _description(operation: Operation, limit: int) -> Any:
    summary, body = operation.summary.strip(), operation.description.strip()
    text = f"{summary}\n\n{body}" if summary and body and not body.startswith(summary) else body or summary
    if operation.deprecated:
        text = f"(Deprecated) {text}"
    return clean_text(text, limit)


def _annotations(method: str, title: str | None) -> ToolAnnotations:
    read_only = method in _READ_ONLY
    destructive: bool | None = None
    if method == "DELETE":
        destructive = True
    elif method == "POST":
        destructive = False
    return ToolAnnotations(
        title=title,
        read_only=read_only,
        destructive=None if read_only else destructive,
        idempotent=method in _IDEMPOTENT,
        open_world=True,
    )
