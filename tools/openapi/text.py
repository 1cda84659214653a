"""Spec text (summaries, descriptions) made inert: normalized, stripped, bounded and flagged.

A spec's prose is attacker-controlled and ends up in a model's context. It is never evaluated
(no templating touches it); here it loses what can hide or reshape it — ANSI escapes, control
characters, bidirectional overrides, zero-width and Unicode tag characters — and is cut to a
bound. Text that looks like instructions or template syntax is kept (it is data) but flagged, so
the conversion report shows the admin which operations to read before approving them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["CleanText", "clean_text"]

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Invisible or direction-changing code points, and Unicode tag characters (U+E0000–U+E007F).
_HIDDEN = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]|[^\x00-\x7f]")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")
_INSTRUCTION = re.compile(
    r"<\s*/?\s*(important|system|instructions?|secret|admin)\s*>"
    r"|\b(ignore|disregard|forget)\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|other)\s+"
    r"(instructions|messages|context|rules)"
    r"|\b(do\s+not|don't|never)\s+(tell|inform|mention\s+(this\s+)?to|reveal\s+(this\s+)?to)\s+the\s+user"
    r"|\bbefore\s+(using|calling)\s+(this|any\s+other)\s+(tool|function)",
    re.I,
)
_TEMPLATE = re.compile(r"\$\{|\{\{|\{%|<%")


@dataclass(frozen=True, slots=True)
class CleanText:
    text: str
    flags: tuple[str, ...] = ()


_EMPTY = CleanText("")


# Specs repeat the same text a great deal (shared parameters and schemas); so do reloads.
_CACHE: dict[tuple[str, int, bool], CleanText] = {}
_CACHE_MAX = 65536


def clean_text(value: object, limit: int, *, single_line: bool = False) -> CleanText:
    """`value` as safe, bounded text plus the reasons it was flagged (if any)."""
    if not isinstance(value, str) or not value:
        return _EMPTY
    key = (value, limit, single_line)
    cached = _CACHE.get(key)
    if cached is None:
        cached = _clean(value, limit, single_line)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = cached
    return cached


def _clean(value: str, limit: int, single_line: bool) -> CleanText:
    text = value
    flags: list[str] = []
    if _UNSAFE.search(text):
        if "\x1b" in text:
            stripped = _ANSI.sub("", text)
            if stripped != text:
                flags.append("ansi-escapes")
            text = stripped
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        without = _HIDDEN.sub("", text)
        if without != text:
            flags.append("hidden-characters")
        text = _CONTROL.sub("", without)
        text = unicodedata.normalize("NFKC", text)
    if single_line:
        text = " ".join(text.split())
    else:
        if " \n" in text or "\t\n" in text:
            text = _TRAILING.sub("\n", text)
        if "\n\n\n" in text:
            text = _BLANK_LINES.sub("\n\n", text)
    text = text.strip()
    if len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    if _instruction_like(text):
        flags.append("instruction-like")
    if _TEMPLATE.search(text):
        flags.append("template-syntax")
    return CleanText(text, tuple(flags))


def _instruction_like(text: str) -> bool:
    """`_INSTRUCTION.search(text)`, ruling out most text first with plain substring tests.

    The pattern is slow (alternations under IGNORECASE tried at every position: 60 ms for GitHub's
    spec). On ASCII text each alternative needs the words tested here, and a spec's descriptions
    almost never have them together. Other text always meets the pattern itself: IGNORECASE also
    matches 'ı', 'İ', 'ſ' and 'K' (Kelvin) to ASCII letters, which a lowercase copy would not.
    """
    if text.isascii():
        low = text.lower()
        possible = (
            "<" in low
            or (_any(low, "ignore", "disregard", "forget") and _any(low, "instructions", "messages", "context", "rule"))
            or (_any(low, "not", "don't", "never") and "user" in low)
            or ("before" in low and _any(low, "tool", "function"))
        )
        if not possible:
            return False
    return _INSTRUCTION.search(text) is not None


def _any(text: str, *words: str) -> bool:
    return any(word in text for word in words)
