"""Tool, argument and `$defs` names: sanitized, bounded and deduplicated deterministically.

Names must match `^[A-Za-z0-9_.-]{1,64}$` (64 is Claude Desktop's limit). A name that has to be
cut keeps a short hash of the full original so two long names that share a prefix stay distinct,
and the same spec always yields the same names. Within one spec a repeated name gets `_2`, `_3`
in document order; across sources a clash is an error raised by the registry, never an overwrite.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["MAX_NAME", "NameAllocator", "fit", "operation_name", "sanitize"]

MAX_NAME = 64
_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")
_TEMPLATE_VAR = re.compile(r"\{([^}]*)\}")


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:length]


def sanitize(raw: str, *, fallback: str = "x") -> str:
    """ASCII letters, digits, `_`, `.`, `-` only; accents folded, everything else becomes `_`."""
    if not raw.isascii():
        raw = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    cleaned = _INVALID.sub("_", raw).strip("_")
    return cleaned or fallback


def fit(name: str, limit: int = MAX_NAME, *, original: str | None = None) -> str:
    """`name` cut to `limit` characters, with a hash of `original` (default `name`) when cut."""
    if len(name) <= limit:
        return name
    tag = "_" + _digest(original or name)
    return name[: limit - len(tag)].rstrip("_.-") + tag


def operation_name(operation_id: str | None, method: str, path: str) -> str:
    """The un-prefixed base name: the operationId, else `method_path` (`get_pets_petId`)."""
    if operation_id:
        return sanitize(operation_id, fallback=_digest(operation_id))
    parts = [method.lower()]
    for segment in path.split("/"):
        if segment:
            parts.append(_TEMPLATE_VAR.sub(r"\1", segment))
    return sanitize("_".join(parts), fallback=method.lower())


class NameAllocator:
    """Hands out unique names within one namespace (a spec's tools, one tool's arguments)."""

    def __init__(self, taken: Iterable[str] = (), *, limit: int = MAX_NAME) -> None:
        self._taken = set(taken)
        self._limit = limit

    def __contains__(self, name: str) -> bool:
        return name in self._taken

    def claim(self, wanted: str, *, original: str | None = None) -> str:
        """`wanted` fitted to the limit, or the first free `wanted_2`, `wanted_3`, …"""
        name = fit(wanted, self._limit, original=original)
        if name not in self._taken:
            self._taken.add(name)
            return name
        counter = 2
        while True:
            suffix = f"_{counter}"
            candidate = fit(wanted, self._limit - len(suffix), original=original) + suffix
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate
            counter += 1
