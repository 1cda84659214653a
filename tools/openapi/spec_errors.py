"""Load-time errors of an OpenAPI source. They never reach a client: the operator sees them.

SetupError
└── SpecInvalid              → the document cannot be served (names where and why)
    ├── SpecTooLarge         → a byte, operation or YAML-expansion cap was hit
    └── ExternalRefRefused   → a `$ref` points outside the document and is not allowlisted
"""

from __future__ import annotations

from tools.errors import SetupError

__all__ = ["ExternalRefRefused", "SpecInvalid", "SpecTooLarge"]


class SpecInvalid(SetupError):
    """The document is malformed; `where` is a JSON pointer or a line when known."""

    def __init__(self, origin: str, problem: str, *, where: str | None = None) -> None:
        at = f" at {where}" if where else ""
        super().__init__(f"{origin}{at}: {problem}")
        self.origin = origin
        self.problem = problem
        self.where = where


class SpecTooLarge(SpecInvalid):
    """The document exceeds one of the source's caps."""


class ExternalRefRefused(SpecInvalid):
    """A `$ref` to another file or host that the source's `allow_external_refs` does not list."""

    def __init__(self, origin: str, ref: str, *, where: str | None = None) -> None:
        super().__init__(
            origin,
            f"external $ref {ref!r} refused (list its file or host in allow_external_refs to allow it)",
            where=where,
        )
        self.ref = ref
