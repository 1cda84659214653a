"""YAML to plain JSON data, with the expansion of anchors and aliases bounded.

PyYAML's safe loader already refuses arbitrary tags, but three things still break a gateway:
aliases make a small document expand exponentially when walked ("billion laughs"), YAML 1.1
timestamps and binary become Python objects that are not JSON, and integer keys (`200:` under
`responses`) are not JSON object keys. The loader here keeps timestamps as their literal text,
turns scalar keys into strings, refuses non-JSON types, and counts the expanded size of the node
graph before anything is constructed.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["YamlError", "load_yaml"]

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A token that can start an anchor; documents without one cannot contain aliases at all.
_ANCHOR = re.compile(rb"(?:^|[\s,\[{:-])&[^\s,\[\]{}]", re.M)


class YamlError(ValueError):
    """The text is not YAML a spec can be, with a line number when PyYAML gives one."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


class _SpecLoader(_Base):  # type: ignore[valid-type,misc]
    """Safe loader whose resolvers and constructors only ever produce JSON values."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }
    yaml_constructors: ClassVar[dict[Any, Any]] = dict(_Base.yaml_constructors)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, MappingNode):
            raise YamlError("expected a mapping", _line(node))
        self.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise YamlError("mapping keys must be scalars", _line(key_node))
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, bool):
                key = "true" if key else "false"
            elif key is None:
                key = "null"
            result[str(key)] = self.construct_object(value_node, deep=deep)
        return result


def _construct_float(loader: _SpecLoader, node: ScalarNode) -> float:
    value = float(yaml.SafeLoader.construct_yaml_float(loader, node))
    if not math.isfinite(value):
        raise YamlError("NaN and infinite numbers are not JSON", _line(node))
    return value


def _refuse(loader: _SpecLoader, node: Node) -> Any:
    raise YamlError(f"the YAML type {node.tag} has no JSON equivalent", _line(node))


_SpecLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
    _SpecLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse)
_SpecLoader.add_constructor(None, _refuse)


def _line(node: Node | None) -> int | None:
    mark = getattr(node, "start_mark", None)
    return None if mark is None else int(mark.line) + 1


def load_yaml(data: bytes, *, max_nodes: int) -> Any:
    """Parse one YAML document into JSON data.

    Raises:
        YamlError: not YAML, more than one document, a non-JSON type, recursive aliases, or
            aliases expanding past `max_nodes` nodes.
    """
    loader = _SpecLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _ANCHOR.search(data):
            expanded = _expanded_size(node, max_nodes)
            if expanded > max_nodes:
                raise YamlError(f"aliases expand the document past {max_nodes} nodes (alias bomb?)")
        return loader.construct_document(node)
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise YamlError(f"{exc.problem or exc.context or 'invalid YAML'}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).splitlines()[0] if str(exc) else "invalid YAML") from None
    except RecursionError:
        raise YamlError("nesting too deep") from None
    finally:
        loader.dispose()


def _expanded_size(root: Node, cap: int) -> int:
    """Nodes the graph has when every alias is expanded, saturating just above `cap`.

    Iterative, memoized by node identity: linear in the number of distinct nodes. A node met
    again while it is still open is a recursive alias, which no JSON value can hold.
    """
    done: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum(done[id(child)] for child in _children(node))
            done[key] = min(total, cap + 1)
            continue
        if key in done:
            continue
        if key in open_nodes:
            raise YamlError("recursive YAML alias (a value contains itself)", _line(node))
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            child_key = id(child)
            if child_key in open_nodes:
                raise YamlError("recursive YAML alias (a value contains itself)", _line(child))
            if child_key not in done:
                stack.append((child, False))
    return done[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []
