"""`Secret`: a credential value that never shows itself.

Reprs and strings end up in logs, tracebacks, audit rows, error messages and debugger output;
a `Secret` renders as a fixed mask in all of them, so the only way to the value is the explicit
`reveal()` at the point of use (the executor's injection).
"""

from __future__ import annotations

import hmac
from typing import NoReturn

__all__ = ["MASK", "Secret"]

MASK = "********"


class Secret:
    """A secret string whose `repr`, `str` and `format` are a mask; compared in constant time."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself: call it only where the secret leaves for its upstream."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> NoReturn:
        # Pickling (multiprocessing, caches, copy) would carry the value somewhere unmasked.
        raise TypeError("a Secret cannot be pickled or copied")
