"""Argument conditions compiled once into closures with three outcomes.

A check answers True (holds), False (does not hold) or None (undecided: the argument is missing,
has the wrong JSON type, or a pattern ran out of budget). Undecided is never read as "holds" and
never as "does not hold": an allow rule needs True, and a deny rule fires on True *or* None, so a
missing or odd argument can only ever make a decision stricter (THREATS R3).

Comparisons are typed as JSON types: `"1"` is not `1`, `true` is not `1`, `1` equals `1.0`.
`all`/`any` combine with Kleene logic (`all` is False if any part is False, else undecided if any
part is, else True; `any` mirrors it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from server.policy.model import ArgPath, Condition, RangeSpec
from server.policy.safe_regex import SafePattern, Undecided

__all__ = ["Check", "Tri", "compile_condition", "describe_condition", "json_equal"]

Tri = bool | None
Check = Callable[[Mapping[str, Any]], Tri]

_MISSING = object()


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values that never conflates types (`True != 1`, `"1" != 1`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if _is_array(a) and _is_array(b):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return False


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _lookup(arguments: Mapping[str, Any], path: ArgPath) -> Any:
    if isinstance(path, str):
        return arguments.get(path, _MISSING)
    value: Any = arguments
    for part in path:
        if isinstance(part, str) and isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(part, int) and _is_array(value) and -len(value) <= part < len(value):
            value = value[part]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _leaf(condition: Condition) -> Callable[[Any], Tri]:
    operator = condition.operator
    if operator == "equals":
        expected = condition.equals
        return lambda value: json_equal(value, expected)
    if operator == "in":
        options = tuple(condition.in_ or ())
        return lambda value: any(json_equal(value, option) for option in options)
    if operator == "contains":
        needle = condition.contains

        # A string is not a list of words: "not-admin" does not contain "admin" here, it is
        # simply the wrong type, which leaves the condition undecided.
        def contains(value: Any) -> Tri:
            if not _is_array(value):
                return None
            return any(json_equal(item, needle) for item in value)

        return contains
    if operator == "matches":
        pattern = SafePattern(condition.matches or "")

        def matches(value: Any) -> Tri:
            if not isinstance(value, str):
                return None
            try:
                return pattern.fullmatch(value)
            except Undecided:
                return None

        return matches
    assert condition.range is not None
    return _range(condition.range)


def _range(spec: RangeSpec) -> Callable[[Any], Tri]:
    def within(value: Any) -> Tri:
        if not _is_number(value):
            return None
        return not (
            (spec.min is not None and value < spec.min)
            or (spec.max is not None and value > spec.max)
            or (spec.exclusive_min is not None and value <= spec.exclusive_min)
            or (spec.exclusive_max is not None and value >= spec.exclusive_max)
        )

    return within


def compile_condition(condition: Condition) -> Check:
    """Turn a condition into a closure over the argument mapping.

    Raises:
        server.policy.safe_regex.PatternError: a `matches` pattern outside the safe subset.
    """
    if condition.all is not None:
        parts = tuple(compile_condition(part) for part in condition.all)

        def every(arguments: Mapping[str, Any]) -> Tri:
            undecided = False
            for part in parts:
                result = part(arguments)
                if result is False:
                    return False
                undecided = undecided or result is None
            return None if undecided else True

        return every
    if condition.any is not None:
        parts = tuple(compile_condition(part) for part in condition.any)

        def some(arguments: Mapping[str, Any]) -> Tri:
            undecided = False
            for part in parts:
                result = part(arguments)
                if result is True:
                    return True
                undecided = undecided or result is None
            return None if undecided else False

        return some
    assert condition.arg is not None
    path = condition.arg
    test = _leaf(condition)

    def leaf(arguments: Mapping[str, Any]) -> Tri:
        value = _lookup(arguments, path)
        return None if value is _MISSING else test(value)

    return leaf


def describe_condition(condition: Condition) -> str:
    """A one-line human form, for `toolkiln policy explain`."""
    if condition.all is not None:
        return "all(" + ", ".join(describe_condition(c) for c in condition.all) + ")"
    if condition.any is not None:
        return "any(" + ", ".join(describe_condition(c) for c in condition.any) + ")"
    arg = condition.arg if isinstance(condition.arg, str) else "/".join(map(str, condition.arg or ()))
    operator = condition.operator
    operand: Any = condition.range.model_dump(exclude_none=True) if condition.range else None
    if operand is None:
        operand = getattr(condition, "in_" if operator == "in" else operator)
    return f"{arg} {operator} {operand!r}"
