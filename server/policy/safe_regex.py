"""Full-match regular expressions in linear time, for `matches` conditions.

Python's `re` backtracks: `(a+)+$` against 50,000 `a`s and one `b` never finishes, and a policy
pattern meets attacker-chosen argument values on every call. This module accepts the regular
subset of the syntax (literals, `.`, classes, `\\d \\w \\s` and their negations, groups,
alternation, `* + ? {m,n}` and their lazy forms), builds a Thompson NFA and runs it as a lazily
built DFA: time is linear in the value, whatever the pattern. Backreferences, lookaround and
inline flags are refused when the policy loads, as RE2 refuses them.

A match is always a full match; a leading `^` and a trailing `$` are accepted and mean nothing
more. Besides linear time, every match has a wall-clock budget and a value-size cap; a value
over either is *undecided*, which the policy treats as a failed condition (deny).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_PATTERN", "MAX_VALUE", "PatternError", "SafePattern", "Undecided"]

MAX_PATTERN = 1_000
MAX_VALUE = 65_536
_MAX_STATES = 20_000
_MAX_REPEAT = 1_000
_MAX_CACHE = 50_000
_BUDGET_S = 0.05
_CHECK_EVERY = 4_096

CharTest = Callable[[str], bool]


class PatternError(ValueError):
    """The pattern is not in the accepted subset; the message says where and why."""


class Undecided(Exception):
    """The value is too long or the match ran out of time: neither a match nor a non-match."""


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


_CATEGORIES: dict[str, CharTest] = {
    "d": str.isdecimal,
    "w": _is_word,
    "s": str.isspace,
    "D": lambda c: not c.isdecimal(),
    "W": lambda c: not _is_word(c),
    "S": lambda c: not c.isspace(),
}
_CONTROL = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}


# NFA node kinds: CHAR consumes one character that passes `test`; SPLIT and EPS are epsilon moves.
_CHAR, _SPLIT, _EPS, _MATCH = range(4)


@dataclass(slots=True)
class _Node:
    kind: int
    test: CharTest | None = None
    out: int = -1
    alt: int = -1


@dataclass(slots=True)
class _Frag:
    start: int
    ends: list[tuple[int, str]]  # (node, "out"|"alt") slots to patch


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.nodes: list[_Node] = []

    # -- node plumbing -------------------------------------------------------------------------
    def _node(self, kind: int, test: CharTest | None = None) -> int:
        if len(self.nodes) >= _MAX_STATES:
            raise PatternError("pattern expands to too many states")
        self.nodes.append(_Node(kind, test))
        return len(self.nodes) - 1

    def _patch(self, ends: list[tuple[int, str]], target: int) -> None:
        for index, slot in ends:
            setattr(self.nodes[index], slot, target)

    def _fail(self, why: str) -> PatternError:
        return PatternError(f"{why} at position {self.pos}")

    def _peek(self) -> str | None:
        return self.src[self.pos] if self.pos < len(self.src) else None

    # -- grammar -------------------------------------------------------------------------------
    def parse(self) -> int:
        if self.src.startswith("^"):
            self.pos = 1
        body = self.src
        if body.endswith("$") and not body.endswith("\\$") and len(body) > self.pos:
            self.src = body[:-1]
        frag = self._alternation()
        if self.pos != len(self.src):
            raise self._fail("unbalanced ')'")
        match = self._node(_MATCH)
        self._patch(frag.ends, match)
        return frag.start

    def _alternation(self) -> _Frag:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        frag = branches[0]
        for other in branches[1:]:
            split = self._node(_SPLIT)
            self.nodes[split].out, self.nodes[split].alt = frag.start, other.start
            frag = _Frag(split, frag.ends + other.ends)
        return frag

    def _sequence(self) -> _Frag:
        start = self._node(_EPS)
        ends: list[tuple[int, str]] = [(start, "out")]
        while (c := self._peek()) is not None and c not in "|)":
            piece = self._quantified()
            self._patch(ends, piece.start)
            ends = piece.ends
        return _Frag(start, ends)

    def _quantified(self) -> _Frag:
        begin, mark = self.pos, len(self.nodes)
        self._atom()  # parsed once to find its extent; the copies below are built fresh
        end = self.pos
        del self.nodes[mark:]  # nothing outside the atom points at its nodes yet
        low, high = self._quantifier()
        if low == 1 and high == 1:
            return self._reparse(begin, end)
        start = self._node(_EPS)
        ends: list[tuple[int, str]] = [(start, "out")]
        for _ in range(low):
            frag = self._reparse(begin, end)
            self._patch(ends, frag.start)
            ends = frag.ends
        if high is None:
            loop = self._reparse(begin, end)
            split = self._node(_SPLIT)
            self._patch(ends, split)
            self.nodes[split].out = loop.start
            self._patch(loop.ends, split)
            return _Frag(start, [(split, "alt")])
        skips: list[tuple[int, str]] = []
        for _ in range(high - low):
            frag = self._reparse(begin, end)
            split = self._node(_SPLIT)
            self._patch(ends, split)
            self.nodes[split].out = frag.start
            skips.append((split, "alt"))
            ends = frag.ends
        return _Frag(start, ends + skips)

    def _reparse(self, begin: int, end: int) -> _Frag:
        saved = self.pos
        self.pos = begin
        frag = self._atom()
        if self.pos != end:  # pragma: no cover - the grammar is context-free
            raise self._fail("internal parse mismatch")
        self.pos = saved
        return frag

    def _quantifier(self) -> tuple[int, int | None]:
        c = self._peek()
        if c == "*":
            self.pos += 1
            bounds: tuple[int, int | None] = (0, None)
        elif c == "+":
            self.pos += 1
            bounds = (1, None)
        elif c == "?":
            self.pos += 1
            bounds = (0, 1)
        elif c == "{" and (parsed := self._braces()) is not None:
            bounds = parsed
        else:
            return (1, 1)
        if self._peek() == "?":  # lazy: the same language under full match
            self.pos += 1
        nxt = self._peek()
        if nxt is not None and nxt in "*+?{" and (nxt != "{" or self._braces(peek_only=True) is not None):
            raise self._fail("possessive or repeated quantifier is not supported")
        return bounds

    def _braces(self, *, peek_only: bool = False) -> tuple[int, int | None] | None:
        close = self.src.find("}", self.pos)
        if close < 0:
            return None
        inner = self.src[self.pos + 1 : close]
        low_text, comma, high_text = inner.partition(",")
        if not (low_text.isdigit() or (comma and not low_text)) or (high_text and not high_text.isdigit()):
            return None  # Python reads such a brace as a literal; so do we
        low = int(low_text) if low_text else 0
        high = (int(high_text) if high_text else None) if comma else low
        if low > _MAX_REPEAT or (high is not None and (high > _MAX_REPEAT or high < low)):
            raise self._fail("repeat count out of range")
        if not peek_only:
            self.pos = close + 1
        return (low, high)

    def _atom(self) -> _Frag:
        c = self._peek()
        if c is None:
            raise self._fail("missing expression")
        if c == "(":
            return self._group()
        if c in "*+?":
            raise self._fail("nothing to repeat")
        if c in "^$":
            raise self._fail(f"'{c}' is only allowed at the very start or end")
        self.pos += 1
        if c == "[":
            test = self._char_class()
        elif c == ".":
            test = _not_newline
        elif c == "\\":
            test = self._escape()
        else:
            test = _equals(c)
        node = self._node(_CHAR, test)
        return _Frag(node, [(node, "out")])

    def _group(self) -> _Frag:
        self.pos += 1
        if self.src.startswith("?:", self.pos):
            self.pos += 2
        elif self.src.startswith("?P<", self.pos):
            close = self.src.find(">", self.pos)
            if close < 0:
                raise self._fail("unterminated group name")
            self.pos = close + 1
        elif self._peek() == "?":
            raise self._fail("lookaround, inline flags and backreferences are not supported")
        frag = self._alternation()
        if self._peek() != ")":
            raise self._fail("missing ')'")
        self.pos += 1
        return frag

    def _escape(self) -> CharTest:
        c = self._peek()
        if c is None:
            raise self._fail("trailing backslash")
        self.pos += 1
        if c in _CATEGORIES:
            return _CATEGORIES[c]
        if c in _CONTROL:
            return _equals(_CONTROL[c])
        if c in "xu":
            width = 2 if c == "x" else 4
            digits = self.src[self.pos : self.pos + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self._fail(f"bad \\{c} escape")
            self.pos += width
            return _equals(chr(int(digits, 16)))
        if c.isalnum():
            raise self._fail(f"escape \\{c} is not supported (anchors and backreferences are refused)")
        return _equals(c)

    def _class_char(self) -> str | CharTest:
        c = self._peek()
        if c is None:
            raise self._fail("unterminated character class")
        self.pos += 1
        if c != "\\":
            return c
        nxt = self._peek()
        if nxt is not None and nxt in _CATEGORIES:
            self.pos += 1
            return _CATEGORIES[nxt]
        test = self._escape()
        # single-character escapes come back as an equality test; recover the character
        return getattr(test, "char", test)

    def _char_class(self) -> CharTest:
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        chars: set[str] = set()
        ranges: list[tuple[str, str]] = []
        tests: list[CharTest] = []
        first = True
        while True:
            if self._peek() == "]" and not first:
                self.pos += 1
                break
            first = False
            item = self._class_char()
            if not isinstance(item, str):
                tests.append(item)
                continue
            if self._peek() == "-" and self.pos + 1 < len(self.src) and self.src[self.pos + 1] != "]":
                self.pos += 1
                upper = self._class_char()
                if not isinstance(upper, str) or upper < item:
                    raise self._fail("bad character range")
                ranges.append((item, upper))
            else:
                chars.add(item)
        frozen, spans, checks = frozenset(chars), tuple(ranges), tuple(tests)

        def test(ch: str) -> bool:
            hit = ch in frozen or any(lo <= ch <= hi for lo, hi in spans) or any(t(ch) for t in checks)
            return hit != negated

        return test


class _Equals:
    __slots__ = ("char",)

    def __init__(self, char: str) -> None:
        self.char = char

    def __call__(self, c: str) -> bool:
        return c == self.char


def _equals(char: str) -> CharTest:
    return _Equals(char)


def _not_newline(c: str) -> bool:
    return c != "\n"


class SafePattern:
    """A compiled pattern; `fullmatch` runs in time linear in the value.

    Raises:
        PatternError: at construction, for syntax outside the accepted subset.
    """

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise PatternError(f"pattern longer than {MAX_PATTERN} characters")
        parser = _Parser(pattern)
        start = parser.parse()
        self.pattern = pattern
        self._nodes = parser.nodes
        self._start = self._closure((start,))
        self._transitions: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    def _closure(self, seeds: tuple[int, ...] | list[int]) -> frozenset[int]:
        """The CHAR and MATCH nodes reachable from `seeds` by epsilon moves."""
        seen: set[int] = set()
        found: set[int] = set()
        stack = list(seeds)
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            node = self._nodes[index]
            if node.kind in (_CHAR, _MATCH):
                found.add(index)
            elif node.kind == _SPLIT:
                stack.extend((node.out, node.alt))
            else:
                stack.append(node.out)
        return frozenset(found)

    def _step(self, state: frozenset[int], char: str) -> frozenset[int]:
        key = (state, char)
        cached = self._transitions.get(key)
        if cached is not None:
            return cached
        nodes = self._nodes
        nxt = self._closure([nodes[i].out for i in state if nodes[i].kind == _CHAR and nodes[i].test(char)])  # type: ignore[misc]
        if len(self._transitions) >= _MAX_CACHE:
            self._transitions.clear()
        self._transitions[key] = nxt
        return nxt

    def fullmatch(self, value: str, *, budget_s: float = _BUDGET_S) -> bool:
        """Whether the whole of `value` matches.

        Raises:
            Undecided: `value` is longer than `MAX_VALUE` or the budget ran out.
        """
        if len(value) > MAX_VALUE:
            raise Undecided(f"value longer than {MAX_VALUE} characters")
        deadline = time.perf_counter() + budget_s
        state = self._start
        for index, char in enumerate(value):
            state = self._step(state, char)
            if not state:
                return False
            if index % _CHECK_EVERY == _CHECK_EVERY - 1 and time.perf_counter() > deadline:
                raise Undecided("pattern match ran out of time")
        return any(self._nodes[i].kind == _MATCH for i in state)

    def __repr__(self) -> str:
        return f"SafePattern({self.pattern!r})"
