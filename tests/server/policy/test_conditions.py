"""Argument conditions: typed comparison, explicit paths, three-valued logic (THREATS R3)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.policy.conditions import Tri, compile_condition, json_equal
from server.policy.model import Condition


def check(condition: dict[str, Any], arguments: dict[str, Any]) -> Tri:
    return compile_condition(Condition.model_validate(condition))(arguments)


@pytest.mark.parametrize(
    ("condition", "arguments", "expected"),
    [
        pytest.param({"arg": "n", "equals": 1}, {"n": "1"}, False, id="equals-string-1-is-not-number-1"),
        pytest.param({"arg": "n", "equals": 1}, {"n": True}, False, id="equals-true-is-not-1"),
        pytest.param({"arg": "n", "equals": 1}, {"n": 1.0}, True, id="equals-1.0-is-1"),
        pytest.param({"arg": "flag", "equals": True}, {"flag": 1}, False, id="equals-1-is-not-true"),
        pytest.param({"arg": "env", "in": ["dev", "staging"]}, {"env": "prod"}, False, id="in-miss"),
        pytest.param({"arg": "env", "in": ["dev", "staging"]}, {"env": "dev"}, True, id="in-hit"),
        pytest.param({"arg": "n", "in": [0, 1]}, {"n": False}, False, id="in-false-is-not-0"),
        pytest.param({"arg": "roles", "contains": "admin"}, {"roles": ["not-admin"]}, False, id="contains-list-miss"),
        pytest.param({"arg": "roles", "contains": "admin"}, {"roles": ["admin"]}, True, id="contains-list-hit"),
        pytest.param({"arg": "roles", "contains": "admin"}, {"roles": "not-admin"}, None, id="contains-on-string"),
        pytest.param({"arg": "path", "matches": "reports/[a-z]+"}, {"path": "reports/q1"}, False, id="matches-full"),
        pytest.param({"arg": "path", "matches": "reports/[a-z0-9]+"}, {"path": "reports/q1"}, True, id="matches-ok"),
        pytest.param({"arg": "path", "matches": "x"}, {"path": "../x"}, False, id="matches-unanchored-prefix"),
        pytest.param({"arg": "path", "matches": ".*"}, {"path": 7}, None, id="matches-non-string"),
        pytest.param({"arg": "amount", "range": {"max": 100}}, {"amount": 100}, True, id="range-inclusive"),
        pytest.param({"arg": "amount", "range": {"exclusive_max": 100}}, {"amount": 100}, False, id="range-exclusive"),
        pytest.param({"arg": "amount", "range": {"min": 0}}, {"amount": "5"}, None, id="range-string"),
        pytest.param({"arg": "amount", "range": {"min": 0}}, {"amount": True}, None, id="range-bool"),
        pytest.param({"arg": "amount", "range": {"max": 10}}, {"amount": float("nan")}, None, id="range-nan"),
        pytest.param({"arg": "amount", "range": {"max": 10}}, {}, None, id="missing-argument"),
        pytest.param({"arg": "a.b", "equals": 1}, {"a.b": 1, "a": {"b": 2}}, True, id="dotted-name-is-a-literal-key"),
        pytest.param({"arg": ["a", "b"], "equals": 2}, {"a.b": 1, "a": {"b": 2}}, True, id="list-is-a-path"),
        pytest.param({"arg": ["a", "b"], "equals": 2}, {"a.b": 2}, None, id="path-does-not-read-literal-key"),
        pytest.param({"arg": ["items", 1], "equals": "y"}, {"items": ["x", "y"]}, True, id="path-array-index"),
        pytest.param({"arg": ["items", 5], "equals": "y"}, {"items": ["x", "y"]}, None, id="path-index-out-of-range"),
        pytest.param({"arg": ["items", "0"], "equals": "x"}, {"items": ["x"]}, None, id="path-string-on-array"),
    ],
)
def test_leaf_conditions_compare_json_types_exactly(
    condition: dict[str, Any], arguments: dict[str, Any], expected: Tri
) -> None:
    assert check(condition, arguments) is expected


def test_matches_on_a_50k_redos_value_is_bounded_and_never_true() -> None:
    condition = {"arg": "s", "matches": "(a+)+"}
    assert check(condition, {"s": "a" * 50_000 + "b"}) in (False, None)


@pytest.mark.parametrize(
    ("parts", "all_expected", "any_expected"),
    [
        pytest.param([True, True], True, True, id="TT"),
        pytest.param([True, False], False, True, id="TF"),
        pytest.param([True, None], None, True, id="TU"),
        pytest.param([False, None], False, None, id="FU"),
        pytest.param([None, None], None, None, id="UU"),
        pytest.param([False, False], False, False, id="FF"),
    ],
)
def test_all_and_any_use_three_valued_logic(parts: list[Tri], all_expected: Tri, any_expected: Tri) -> None:
    arguments: dict[str, Any] = {}
    leaves = []
    for index, part in enumerate(parts):
        name = f"v{index}"
        if part is not None:
            arguments[name] = 1 if part else 0
        leaves.append({"arg": name, "equals": 1})
    assert check({"all": leaves}, arguments) is all_expected
    assert check({"any": leaves}, arguments) is any_expected


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param({"arg": "x"}, id="no-operator"),
        pytest.param({"arg": "x", "equals": 1, "in": [1]}, id="two-operators"),
        pytest.param({"equals": 1}, id="no-arg"),
        pytest.param({"all": []}, id="empty-all"),
        pytest.param({"all": [{"arg": "x", "equals": 1}], "arg": "y", "equals": 2}, id="mixed-shape"),
        pytest.param({"arg": [], "equals": 1}, id="empty-path"),
        pytest.param({"not": {"arg": "x", "equals": 1}}, id="no-negation"),
        pytest.param({"arg": "x", "range": {}}, id="boundless-range"),
    ],
)
def test_malformed_conditions_are_rejected_by_the_schema(condition: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate(condition)


def test_json_equal_recurses_without_conflating_types() -> None:
    assert json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not json_equal({"a": [1]}, {"a": [True]})
    assert not json_equal(None, 0)
    assert not json_equal([1, 2], [1, 2, 3])
