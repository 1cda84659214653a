"""The per-tool schema size budget, and graceful degradation past it.

Sizes are computed from each shared definition's cached size, so measuring 1,000 tools does not
serialize their `$defs` 1,000 times. Past the budget a tool first loses its `outputSchema`
(results still arrive, just undescribed), then its unions below the top level collapse into one
described schema; if it is still too large it is skipped, and the report says which happened.
A whole source has a budget too (its tools/list): past it, the largest outputSchemas go first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tools.openapi.report import OperationReport
from tools.openapi.schema import DEFS_PREFIX, DefClosure, json_size

if TYPE_CHECKING:
    from tools.openapi.convert import ToolDraft

__all__ = ["assemble", "assembled_size", "collapse_unions", "fit_source_budget"]


def assembled_size(top: Mapping[str, Any], closure: DefClosure) -> int:
    """Bytes of `top` with `"$defs": {…}` appended, as compact JSON (exact)."""
    size = json_size(top)
    if not closure.defs:
        return size
    size += len('"$defs":{}') + (1 if top else 0)
    return size + closure.entry_bytes + len(closure.defs) - 1


def assemble(top: Mapping[str, Any], closure: DefClosure) -> dict[str, Any]:
    schema = dict(top)
    if closure.defs:
        schema["$defs"] = {d.name: d.schema for d in closure.defs}
    return schema


def collapse_unions(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an assembled schema whose unions below the top level are one described schema.

    Definitions no longer referenced afterwards are dropped.
    """
    defs = schema.get("$defs", {})
    top = {k: v for k, v in schema.items() if k != "$defs"}
    collapsed_top = {k: _collapse(v, 1) for k, v in top.items()}
    collapsed_defs = {name: _collapse(body, 2) for name, body in defs.items()}
    reachable: set[str] = set()
    todo = list(_refs(collapsed_top))
    while todo:
        name = todo.pop()
        if name in reachable or name not in collapsed_defs:
            continue
        reachable.add(name)
        todo.extend(_refs(collapsed_defs[name]))
    result = dict(collapsed_top)
    if reachable:
        result["$defs"] = {name: collapsed_defs[name] for name in sorted(reachable)}
    return result


def _collapse(node: Any, depth: int) -> Any:
    if isinstance(node, list):
        return [_collapse(item, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    union = node.get("anyOf") or node.get("oneOf")
    if depth > 1 and isinstance(union, list) and len(union) > 1:
        described: dict[str, Any] = {}
        if all(isinstance(b, dict) and (b.get("type") == "object" or "properties" in b) for b in union):
            described["type"] = "object"
        text = node.get("description")
        note = f"One of {len(union)} shapes; details omitted to fit the schema size budget."
        described["description"] = f"{text} ({note})" if isinstance(text, str) else note
        return described
    return {k: _collapse(v, depth + 1) for k, v in node.items()}


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(DEFS_PREFIX):
                found.append(ref[len(DEFS_PREFIX) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def fit_source_budget(
    drafts: list[ToolDraft], reports: list[OperationReport], limit: int
) -> tuple[list[ToolDraft], list[OperationReport]]:
    """Drop outputSchemas, largest first, until the source's whole tools/list fits `limit`."""
    total = sum(d.input_bytes + d.output_bytes + len(d.description) for d in drafts)
    if total <= limit:
        return drafts, reports
    by_name = {d.name: i for i, d in enumerate(drafts)}
    changed: dict[str, int] = {}
    for draft in sorted((d for d in drafts if d.output_schema is not None), key=lambda d: (-d.output_bytes, d.name)):
        drafts[by_name[draft.name]] = replace(draft, output_schema=None, output_bytes=0)
        changed[draft.name] = draft.input_bytes
        total -= draft.output_bytes
        if total <= limit:
            break
    reason = f"degraded: outputSchema dropped (the source's tools/list is over its {limit:,} B budget)"
    return drafts, [
        replace(r, reason=reason, schema_bytes=changed[r.tool]) if r.tool in changed else r for r in reports
    ]
