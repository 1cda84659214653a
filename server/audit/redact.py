"""Schema-aware redaction of arguments before they are stored in the audit log.

Secrets never reach the audit store: a value is replaced when its name looks secret (the same
pattern the logs use, plus configured names) or when the tool's schema marks it `format: password`
or `writeOnly`. Values of credentials injected for the current request are scrubbed wherever they
appear. Hostile values are bounded: long strings are cut and digested, big containers truncated,
deep nesting cut off, and strings that are not valid Unicode made valid, so every record has a
canonical form.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.logs import SECRETS

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|authorization|api[-_]?key|cookie|credential|private[-_]?key|session)",
    re.I,
)
_MAX_ITEMS = 64
_MAX_DEPTH = 8
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class Redactor:
    def __init__(self, *, max_string_chars: int = 256, extra_names: Iterable[str] = ()) -> None:
        self.max_string_chars = max_string_chars
        names = [re.escape(name) for name in extra_names]
        self._extra = re.compile("|".join(names), re.I) if names else None

    def secret_name(self, name: str) -> bool:
        return bool(_SECRET_NAME.search(name) or (self._extra is not None and self._extra.search(name)))

    def arguments(self, arguments: object, schema: Mapping[str, Any] | None) -> Any:
        """A bounded, secret-free copy of `arguments` fit for canonical JSON."""
        return self._value(arguments, schema, 0)

    def _value(self, value: object, schema: Mapping[str, Any] | None, depth: int) -> Any:
        if schema is not None and _marks_secret(schema):
            return REDACTED
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else repr(value)
        if isinstance(value, str):
            return self.text(value)
        if depth >= _MAX_DEPTH:
            return "[too deep]"
        if isinstance(value, Mapping):
            return self._object(value, schema, depth)
        if isinstance(value, list | tuple):
            items_schema = _sub(schema, "items")
            items = [self._value(item, items_schema, depth + 1) for item in value[:_MAX_ITEMS]]
            if len(value) > _MAX_ITEMS:
                items.append(f"[{len(value) - _MAX_ITEMS} more items]")
            return items
        return self.text(repr(value))

    def _object(self, value: Mapping[Any, Any], schema: Mapping[str, Any] | None, depth: int) -> dict[str, Any]:
        properties = _sub(schema, "properties")
        out: dict[str, Any] = {}
        for count, (raw_key, item) in enumerate(value.items()):
            if count >= _MAX_ITEMS:
                out["[truncated]"] = f"{len(value) - _MAX_ITEMS} more keys"
                break
            key = self.text(str(raw_key), limit=128)
            if self.secret_name(key):
                out[key] = REDACTED
                continue
            item_schema = properties.get(raw_key) if isinstance(properties, Mapping) else None
            out[key] = self._value(item, item_schema if isinstance(item_schema, Mapping) else None, depth + 1)
        return out

    def text(self, value: str, *, limit: int | None = None) -> str:
        cap = self.max_string_chars if limit is None else limit
        value = SECRETS.scrub(value)
        if _LONE_SURROGATE.search(value):
            value = _LONE_SURROGATE.sub("\ufffd", value)
        if len(value) <= cap:
            return value
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
        return f"{value[:cap]}…[{len(value)} chars, sha256:{digest}]"


def _marks_secret(schema: Mapping[str, Any]) -> bool:
    return schema.get("format") == "password" or schema.get("writeOnly") is True


def _sub(schema: Mapping[str, Any] | None, keyword: str) -> Any:
    return None if schema is None else schema.get(keyword)
