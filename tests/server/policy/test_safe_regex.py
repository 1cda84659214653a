"""The linear-time full-match regex used by `matches` conditions (THREATS R3)."""

from __future__ import annotations

import contextlib
import random
import re
import time

import pytest

from server.policy.safe_regex import MAX_VALUE, PatternError, SafePattern, Undecided

AGREEING_PATTERNS = [
    "abc",
    "a|b",
    "(a|b)*c",
    "a{2,3}",
    "a{2}",
    "a{2,}",
    "a{,2}",
    "[a-z0-9_-]+\\.csv",
    "\\d+",
    "\\w+-\\s?\\S",
    "x?y*z+",
    "(?:ab)+",
    "[^abc]*",
    "a.c",
    "(a*)*b",
    "^ab$",
    "[]a]",
    "[\\]]+",
    "\\x41b",
    "a{0}b",
    "(a|)+",
    "a*?b",
    "[a-]+",
    "x{3,5}?",
    "(?P<name>ab)c",
    "a{x}",
]


@pytest.mark.parametrize("pattern", AGREEING_PATTERNS)
def test_full_match_agrees_with_python_re_on_random_values(pattern: str) -> None:
    compiled, reference = SafePattern(pattern), re.compile(pattern)
    rng = random.Random(pattern)
    alphabet = "abcxyzA019_-. ]{}\n"
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        assert compiled.fullmatch(value) == bool(reference.fullmatch(value)), value


def test_an_unanchored_pattern_still_has_to_match_the_whole_value() -> None:
    pattern = SafePattern("prod")
    assert pattern.fullmatch("prod")
    assert not pattern.fullmatch("not-prod")
    assert not pattern.fullmatch("production")


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("(a+)+$", id="nested-plus"),
        pytest.param("(a|a)*$", id="overlapping-alternation"),
        pytest.param("(.*a){20}", id="repeated-dot-star"),
        pytest.param("(a|aa)+b", id="ambiguous-split"),
        pytest.param("(\\w+\\s?)*$", id="word-space-star"),
    ],
)
def test_catastrophic_backtracking_patterns_finish_fast_on_50k_characters(pattern: str) -> None:
    compiled = SafePattern(pattern)
    value = "a" * 50_000 + "!"
    started = time.perf_counter()
    with contextlib.suppress(Undecided):  # out of budget is a legitimate, bounded answer
        compiled.fullmatch(value)
    assert time.perf_counter() - started < 1.0


def test_a_value_over_the_size_cap_is_undecided_not_a_match() -> None:
    with pytest.raises(Undecided):
        SafePattern(".*").fullmatch("x" * (MAX_VALUE + 1))


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("(a", id="unclosed-group"),
        pytest.param("a)", id="stray-paren"),
        pytest.param("*a", id="nothing-to-repeat"),
        pytest.param("a**", id="double-quantifier"),
        pytest.param("a++", id="possessive"),
        pytest.param("(?=a)a", id="lookahead"),
        pytest.param("(?<!a)b", id="lookbehind"),
        pytest.param("(a)\\1", id="backreference"),
        pytest.param("\\bword\\b", id="word-boundary"),
        pytest.param("(?i)abc", id="inline-flag"),
        pytest.param("a^b", id="inner-caret"),
        pytest.param("[a", id="unclosed-class"),
        pytest.param("[z-a]", id="reversed-range"),
        pytest.param("a{1001}", id="huge-repeat"),
        pytest.param("\\", id="trailing-backslash"),
        pytest.param("x" * 1001, id="pattern-too-long"),
    ],
)
def test_patterns_outside_the_linear_subset_are_refused_at_load(pattern: str) -> None:
    with pytest.raises(PatternError):
        SafePattern(pattern)
