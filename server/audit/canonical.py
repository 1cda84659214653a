"""Canonical JSON for hashing (RFC 8785 style) and the chain's hash and MAC functions.

Sorted keys, no whitespace, UTF-8, and numbers written the way ECMAScript writes them, so a record
hashes to the same bytes after a restart, on another machine or after a dependency upgrade.
Python's own float repr differs from ECMAScript's (`1e+16` vs `10000000000000000`, `1e-07` vs
`1e-7`), hence `_number`. Values JSON cannot carry (NaN, infinities, lone surrogates) are refused:
the audit layer sanitizes before it hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

__all__ = ["GENESIS", "canonical_json", "chain_hash", "checkpoint_mac"]

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 bytes of `value` (dicts with string keys, lists, str, int, float, bool, None).

    Raises:
        ValueError: a non-finite number, a non-string key or a string that is not valid Unicode.
        TypeError: a value of a type JSON has no form for.
    """
    if _plain(value, 0):
        # Nothing in `value` formats differently in Python and ECMAScript: the C encoder is exact.
        return _FAST.encode(value).encode("utf-8")
    return "".join(_encode(value)).encode("utf-8")


# Built once: `json.dumps` with options builds a new encoder per call, which costs more than the
# encoding of a whole audit record. No cycle check: `_plain` only passes bounded nesting.
_FAST = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def _plain(value: Any, depth: int) -> bool:
    """Whether `json.dumps(sort_keys=True)` already yields the canonical form of `value`.

    True unless it holds a float Python writes differently (integral, or outside 1e-4..1e16 where
    Python switches to exponents), a key whose code-point order may differ from UTF-16 order
    (characters from U+E000 up), or nesting deep enough that recursion should be the slow path's.
    """
    kind = type(value)
    # Exact types first, checked in line: a record is mostly strings and ints, and a function call
    # per field would cost more than the encoding. Subclasses and floats take the long way.
    if kind is str or kind is int or value is None or kind is bool:
        return True
    if depth > 32:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) >= "\ue000"):
                return False
            kind = type(item)
            if not (kind is str or kind is int or item is None or kind is bool) and not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            kind = type(item)
            if not (kind is str or kind is int or item is None or kind is bool) and not _plain(item, depth + 1):
                return False
        return True
    return _plain_other(value, depth)


def _plain_other(value: Any, depth: int) -> bool:
    if value is None or isinstance(value, str | int):
        return True
    if isinstance(value, float):
        magnitude = abs(value)
        return 1e-4 <= magnitude < 1e16 and not value.is_integer()
    if depth > 32:
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or (not key.isascii() and max(key) >= "\ue000"):
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if isinstance(value, list | tuple):
        return all(_plain(item, depth + 1) for item in value)
    return False


def _encode(value: Any) -> list[str]:
    out: list[str] = []
    _write(value, out)
    return out


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        keys = list(value)
        if not all(isinstance(key, str) for key in keys):
            raise ValueError("canonical JSON object keys must be strings")
        # RFC 8785 sorts by UTF-16 code units; this differs from code-point order only for
        # characters beyond the BMP, which the sort key below handles.
        out.append("{")
        for index, key in enumerate(sorted(keys, key=_utf16_key)):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"no canonical JSON form for {type(value).__name__}")


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _number(value: float) -> str:
    """ECMAScript Number::toString for a finite double."""
    if not math.isfinite(value):
        raise ValueError("canonical JSON has no form for NaN or infinities")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # Shortest round-tripping digits come from repr; rebuild them as digits × 10^exponent.
    digits, exponent = _shortest_digits(abs(value))
    k = len(digits)
    n = exponent + k  # the position of the decimal point relative to the digits
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """(digits, exponent) with value == int(digits) * 10**exponent, digits minimal (from repr)."""
    text = repr(value)
    mantissa, _, exp_part = text.partition("e")
    exponent = int(exp_part) if exp_part else 0
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    exponent -= len(frac)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return stripped or "0", exponent


def chain_hash(prev_hash: str, body: bytes) -> str:
    """The hash of one record: SHA-256 over the previous record's hash and this record's body."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def checkpoint_mac(key: bytes, seq: int, record_hash: str) -> str:
    """HMAC-SHA256 binding a chain position to its hash; only the key holder can make one."""
    message = f"toolkiln-audit-checkpoint\n{seq}\n{record_hash}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()
