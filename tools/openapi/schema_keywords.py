"""The JSON Schema 2020-12 keywords the converter keeps, and small per-keyword rules.

Anything not in `KIND` is dropped: OpenAPI-only keywords (`nullable`, `discriminator`, `xml`,
`example`), extensions (`x-*`) and identifiers that would re-base references (`$id`, `$anchor`,
`$schema`) once a schema sits under `$defs`.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ANY_VALUE",
    "BOOLEAN",
    "CHILD",
    "COUNT",
    "DEPENDENT_REQUIRED",
    "DEPENDENT_SCHEMAS",
    "ENUM",
    "ITEMS",
    "KIND",
    "MANY",
    "NUMBER",
    "PATTERN",
    "PATTERN_PROPERTIES",
    "PREFIX_ITEMS",
    "PROPERTIES",
    "REF",
    "REQUIRED",
    "SAME",
    "STRING",
    "TEXT",
    "TYPE",
    "TYPES",
    "compiles",
    "is_number",
    "nullable",
]

TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})

# What each JSON Schema keyword is, for one dictionary lookup per key while converting.
(
    TYPE,
    TEXT,
    PROPERTIES,
    REF,
    ITEMS,
    STRING,
    REQUIRED,
    ENUM,
    MANY,
    BOOLEAN,
    ANY_VALUE,
    NUMBER,
    COUNT,
    PATTERN,
    CHILD,
    SAME,
    PREFIX_ITEMS,
    PATTERN_PROPERTIES,
    DEPENDENT_SCHEMAS,
    DEPENDENT_REQUIRED,
) = range(1, 21)
KIND: dict[str, int] = {
    "type": TYPE,
    "description": TEXT,
    "title": TEXT,
    "properties": PROPERTIES,
    "$ref": REF,
    "items": ITEMS,
    "format": STRING,
    "contentEncoding": STRING,
    "contentMediaType": STRING,
    "required": REQUIRED,
    "enum": ENUM,
    # Subschemas applying to the same instance: a reference here can loop without consuming input.
    "allOf": MANY,
    "anyOf": MANY,
    "oneOf": MANY,
    "not": SAME,
    "if": SAME,
    "then": SAME,
    "else": SAME,
    "uniqueItems": BOOLEAN,
    "deprecated": BOOLEAN,
    "readOnly": BOOLEAN,
    "writeOnly": BOOLEAN,
    "const": ANY_VALUE,
    "default": ANY_VALUE,
    "maximum": NUMBER,
    "minimum": NUMBER,
    "exclusiveMaximum": NUMBER,
    "exclusiveMinimum": NUMBER,
    "multipleOf": NUMBER,
    "maxLength": COUNT,
    "minLength": COUNT,
    "maxItems": COUNT,
    "minItems": COUNT,
    "maxProperties": COUNT,
    "minProperties": COUNT,
    "minContains": COUNT,
    "maxContains": COUNT,
    "pattern": PATTERN,
    "additionalProperties": CHILD,
    "unevaluatedProperties": CHILD,
    "propertyNames": CHILD,
    "contains": CHILD,
    "unevaluatedItems": CHILD,
    "prefixItems": PREFIX_ITEMS,
    "patternProperties": PATTERN_PROPERTIES,
    "dependentSchemas": DEPENDENT_SCHEMAS,
    "dependentRequired": DEPENDENT_REQUIRED,
}


_ANNOTATIONS = ("title", "description", "default", "deprecated", "readOnly", "writeOnly")


def nullable(out: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 `nullable: true` (2.0 `x-nullable`) in 2020-12 terms: `null` joins the type."""
    kind = out.get("type")
    if isinstance(kind, str | list):
        kinds = [kind] if isinstance(kind, str) else kind
        if "null" not in kinds:
            out["type"] = [*kinds, "null"]
    elif any(k in out for k in ("$ref", "anyOf", "allOf", "not", "if", "const")):
        outer = {k: out.pop(k) for k in _ANNOTATIONS if k in out}
        return {**outer, "anyOf": [out, {"type": "null"}]}
    enum = out.get("enum")
    if isinstance(enum, list) and None not in enum:
        out["enum"] = [*enum, None]
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PATTERNS: dict[str, bool] = {}


def compiles(pattern: str) -> bool:
    """Whether Python's `re` (what the argument validator uses) accepts the pattern."""
    known = _PATTERNS.get(pattern)
    if known is None:
        try:
            re.compile(pattern)
            known = True
        except (re.error, RecursionError, OverflowError, ValueError):
            known = False
        if len(_PATTERNS) < 10_000:
            _PATTERNS[pattern] = known
    return known
