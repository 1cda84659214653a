"""Put a definition an output schema uses exactly once back where it is used.

Why: a host checks every result against the tool's outputSchema, and a `$ref` costs a lookup each
time the validator passes it; for a 50 KB list of rows whose item schema sits behind a `$ref`,
the Python SDK client spent 2–3 ms of a ~12 ms check on those lookups. A definition reached from
one place only gains nothing from living in `$defs`: written in place the schema is smaller and
means the same. Shared definitions stay in `$defs` (so schemas stay small) and so do recursive
ones (so cycles terminate).

Definition objects are shared with other tools: nothing here mutates one; only the containers on
the way to a substituted reference are copied.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tools.openapi.schema import DEFS_PREFIX

__all__ = ["inline_single_use"]


def inline_single_use(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (a top with `$defs`) with its once-used, non-recursive definitions written in place."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict) or not defs:
        return schema
    top = {k: v for k, v in schema.items() if k != "$defs"}
    uses: Counter[str] = Counter()
    edges: dict[str, set[str]] = {}
    _count(top, defs, uses, set())
    for name, body in defs.items():
        edges[name] = set()
        _count(body, defs, uses, edges[name])
    single = {name for name, n in uses.items() if n == 1} - _recursive(edges)
    if not single:
        return schema
    try:
        inlined_top = _substitute(top, defs, single, {})
        kept = {name: _substitute(body, defs, single, {}) for name, body in defs.items() if name not in single}
    except RecursionError:  # an extraordinarily deep schema: the form with `$ref`s is as valid
        return schema
    kept = {name: body for name, body in kept.items() if uses[name] > 0}
    return {**inlined_top, "$defs": kept} if kept else inlined_top


def _target(node: dict[str, Any], defs: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(DEFS_PREFIX):
        name = ref[len(DEFS_PREFIX) :].replace("~1", "/").replace("~0", "~")
        if name in defs:
            return name
    return None


def _count(root: Any, defs: dict[str, Any], uses: Counter[str], reaches: set[str]) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = _target(node, defs)
            if name is not None:
                uses[name] += 1
                reaches.add(name)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _recursive(edges: dict[str, set[str]]) -> set[str]:
    """Definitions that can reach themselves (directly or through others)."""
    found: set[str] = set()
    for start in edges:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            name = stack.pop()
            if name == start:
                found.add(start)
                break
            if name not in seen:
                seen.add(name)
                stack.extend(edges.get(name, ()))
    return found


def _substitute(node: Any, defs: dict[str, Any], single: set[str], done: dict[str, Any]) -> Any:
    """`node` with references to `single` definitions replaced; the same object when nothing changed."""
    if isinstance(node, dict):
        name = _target(node, defs)
        if name is not None and name in single:
            if name not in done:
                done[name] = _substitute(defs[name], defs, single, done)
            if len(node) == 1:
                return done[name]
            # `$ref` beside other keywords (2020-12): both apply, as an `allOf` would say.
            rest = {k: _substitute(v, defs, single, done) for k, v in node.items() if k != "$ref"}
            return {"allOf": [done[name]], **rest}
        copied: dict[str, Any] | None = None
        for key, value in node.items():
            new = _substitute(value, defs, single, done)
            if new is not value:
                if copied is None:
                    copied = dict(node)
                copied[key] = new
        return node if copied is None else copied
    if isinstance(node, list):
        items = [_substitute(v, defs, single, done) for v in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node
