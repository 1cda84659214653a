"""Output schemas: once-used definitions written in place; shared and recursive ones kept in `$defs`."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from tools.openapi.inline_defs import inline_single_use

ROW = {"type": "object", "properties": {"id": {"type": "integer"}, "owner": {"$ref": "#/$defs/User"}}}
USER = {"type": "object", "properties": {"login": {"type": "string"}}, "required": ["login"]}
NODE = {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}, "value": {"type": "integer"}}}


def _schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
            "author": {"$ref": "#/$defs/User"},
            "tree": {"$ref": "#/$defs/Node"},
            "odd~/name": {"$ref": "#/$defs/odd~0~1name"},
        },
        "$defs": {"Row": ROW, "User": USER, "Node": NODE, "odd~/name": {"type": "boolean"}},
    }


def _refs(value: Any) -> list[str]:
    text = json.dumps(value)
    return sorted({part.split('"')[0] for part in text.split('"$ref": "')[1:]})


def test_once_used_definitions_are_written_in_place_and_shared_or_recursive_ones_stay() -> None:
    schema = _schema()
    before = copy.deepcopy(schema)
    out = inline_single_use(schema)
    assert out["properties"]["rows"]["items"]["properties"]["id"] == {"type": "integer"}
    assert out["properties"]["odd~/name"] == {"type": "boolean"}
    assert set(out["$defs"]) == {"User", "Node"}  # User used twice, Node recursive
    assert _refs(out) == ["#/$defs/Node", "#/$defs/User"]
    assert schema == before  # shared definition objects are never changed in place
    jsonschema.Draft202012Validator.check_schema(out)


@pytest.mark.parametrize(
    "instance",
    [
        {"rows": [{"id": 1, "owner": {"login": "a"}}], "author": {"login": "b"}, "tree": {"child": {"value": 2}}},
        {"rows": [{"id": "x"}]},
        {"rows": [{"id": 1, "owner": {}}]},
        {"tree": {"child": {"child": {"value": "deep"}}}},
        {"odd~/name": 3},
    ],
)
def test_the_inlined_schema_accepts_and_rejects_exactly_what_the_original_does(instance: dict[str, Any]) -> None:
    original = jsonschema.Draft202012Validator(_schema())
    inlined = jsonschema.Draft202012Validator(inline_single_use(_schema()))
    assert original.is_valid(instance) == inlined.is_valid(instance)


def test_a_reference_beside_other_keywords_keeps_both() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A", "description": "the a", "maxProperties": 1}},
        "$defs": {"A": {"type": "object", "required": ["x"]}},
    }
    out = inline_single_use(schema)
    assert out["properties"]["a"] == {
        "allOf": [{"type": "object", "required": ["x"]}],
        "description": "the a",
        "maxProperties": 1,
    }
    validator = jsonschema.Draft202012Validator(out)
    assert not validator.is_valid({"a": {}})
    assert not validator.is_valid({"a": {"x": 1, "y": 2}})
    assert validator.is_valid({"a": {"x": 1}})


def test_a_cycle_through_several_definitions_is_kept_whole() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}},
        "$defs": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
        },
    }
    out = inline_single_use(schema)
    assert out["properties"]["a"] == {"$ref": "#/$defs/A"}
    assert set(out["$defs"]) == {"A", "B"}


def test_a_schema_without_definitions_is_returned_as_is() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    assert inline_single_use(schema) is schema
