"""Merging `allOf` into one object schema, where that keeps the meaning.

OpenAPI uses `allOf` mostly for inheritance (`allOf: [$ref Base, {properties…}]`). A merged
object is what a client needs to see its arguments, and what the converter needs to flatten a
request body. Only object-shaped parts merge: properties are united (the same property in two
parts becomes an `allOf` of both), `required` is united, annotations come from the first part
that has them. Anything else — unions, conditionals, non-object types, a reference still inside
a cycle — leaves the `allOf` as it is, which is valid JSON Schema too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.openapi.schema import Def, SchemaConverter

__all__ = ["merge_all_of"]

_ANNOTATIONS = frozenset({"title", "description", "default", "deprecated", "readOnly", "writeOnly"})
_MERGEABLE = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "patternProperties",
}
_DEFS_PREFIX = "#/$defs/"


def merge_all_of(converter: SchemaConverter, out: dict[str, Any], shallow: bool) -> dict[str, Any]:
    """`out` with its `allOf` merged in, or `out` unchanged when a part does not merge."""
    branches = out["allOf"]
    rest = {k: v for k, v in out.items() if k != "allOf"}
    if len(branches) == 1 and isinstance(branches[0], dict) and set(branches[0]) == {"$ref"} and "$ref" not in rest:
        # A lone `allOf: [$ref]` (how 3.0 attaches a description to a reference) is the reference.
        return {"$ref": branches[0]["$ref"], **rest}
    parts: list[dict[str, Any]] = [rest] if rest else []
    inlined: list[Def] = []
    for branch in branches:
        if branch is True:
            continue
        if not isinstance(branch, dict):
            return out
        ref = branch.get("$ref")
        if isinstance(ref, str):
            if not set(branch) <= _ANNOTATIONS | {"$ref"} or not ref.startswith(_DEFS_PREFIX):
                return out
            definition = converter.body_for_merge(ref[len(_DEFS_PREFIX) :])
            if definition is None or not isinstance(definition.schema, dict):
                return out
            parts.append({k: v for k, v in branch.items() if k != "$ref"})
            parts.append(definition.schema)
            inlined.append(definition)
        else:
            parts.append(branch)
    merged = _combine(parts)
    if merged is None:
        return out
    for definition in inlined:
        converter.inherit(definition, shallow)
    return merged


def _combine(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    result: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    conflicting_extra = False
    for part in parts:
        if not part.keys() <= _MERGEABLE:
            return None
        for key, value in part.items():
            if key == "properties":
                for name, schema in value.items():
                    if name in properties and properties[name] != schema:
                        properties[name] = {"allOf": [properties[name], schema]}
                    else:
                        properties[name] = schema
            elif key == "required":
                required.extend(value)
            elif key == "type":
                if value != "object":
                    return None
                result["type"] = "object"
            elif key == "additionalProperties":
                if key in result and result[key] != value:
                    conflicting_extra = True
                result.setdefault(key, value)
            elif key == "minProperties":
                result[key] = max(result.get(key, 0), value)
            elif key == "maxProperties":
                result[key] = min(result.get(key, value), value)
            elif key == "patternProperties":
                existing = result.setdefault(key, {})
                for pattern, schema in value.items():
                    if pattern in existing and existing[pattern] != schema:
                        return None
                    existing[pattern] = schema
            else:
                result.setdefault(key, value)
    if conflicting_extra:
        # Parts disagree on extra properties; each part's list is the other's "extra", so the
        # literal combination would reject every instance carrying both parts' fields.
        del result["additionalProperties"]
    elif result.get("additionalProperties") is False and sum("properties" in p for p in parts) > 1:
        del result["additionalProperties"]
    if properties:
        result["properties"] = properties
    if required:
        result["required"] = list(dict.fromkeys(required))
    return result
