"""Cutting reference loops that a validator would follow forever.

A reference under `properties` or `items` consumes one level of the instance, so recursion there
ends with the data. A reference in an applicator that looks at the *same* instance (`allOf`,
`anyOf`, `not`, a bare `$ref`) does not: `A = {"$ref": A}` or `A = allOf[B], B = allOf[A]` makes
a validator recurse until it crashes, and a 500-long chain of them exhausts its stack too. Such a
definition is replaced by an accepting schema that says why, before any tool uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.openapi.schema import Def

__all__ = ["MAX_SAME_INSTANCE_DEPTH", "break_shallow_cycles"]

MAX_SAME_INSTANCE_DEPTH = 32


def _cut(definition: Def, why: str) -> None:
    definition.schema = {"description": f"(Schema not expanded: {why}; any value is accepted.)"}
    definition.refs = frozenset()
    definition.shallow = frozenset()
    definition.notes = (*definition.notes, f"$defs/{definition.name}: {why}")
    definition._size = -1
    definition.depth = 1
    definition.checked = True


def break_shallow_cycles(start: Iterable[Def], defs: Mapping[str, Def]) -> None:
    """Check every unchecked definition reachable from `start`; iterative depth-first search."""
    for root in start:
        if root.checked:
            continue
        open_names = {root.name}
        stack: list[tuple[Def, Iterator[str]]] = [(root, iter(sorted(root.shallow)))]
        while stack:
            node, children = stack[-1]
            child_name = next(children, None)
            if child_name is None:
                stack.pop()
                open_names.discard(node.name)
                if node.checked:
                    continue
                node.depth = 1 + max((defs[c].depth for c in node.shallow if c in defs), default=0)
                node.checked = True
                if node.depth > MAX_SAME_INSTANCE_DEPTH:
                    _cut(node, f"references nest more than {MAX_SAME_INSTANCE_DEPTH} levels deep")
                continue
            child = defs.get(child_name)
            if child is None or child.checked:
                continue
            if child_name in open_names:
                _cut(node, "it refers to itself without any structure in between")
                stack.pop()
                open_names.discard(node.name)
                continue
            open_names.add(child_name)
            stack.append((child, iter(sorted(child.shallow))))
