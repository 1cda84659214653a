"""A call's credentials as the `inject` callable of `tools.openapi.upstream` plus a scrub set.

`CallCredentials` holds what one call sends (header, query or cookie placements) and every form
in which those secrets could come back (raw, URL-encoded, the base64 of a basic pair). The
values are registered with the logging scrubber (`server.logs.SECRETS`, which audit redaction
shares) the moment they are resolved, and `scrub` removes them from whatever the upstream
answered before it reaches the model (THREATS S8).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import httpx

from credentials.masked import Secret
from server.logs import SECRETS, SecretValues

__all__ = ["CallCredentials", "Location", "Placement", "basic_value", "wire_forms"]

Location = Literal["header", "query", "cookie"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one credential goes: `location`, under `name`, as `value` (already in wire form)."""

    location: Location
    name: str
    value: Secret


def wire_forms(value: str) -> list[str]:
    """The spellings under which `value` can travel or be echoed back."""
    return list(dict.fromkeys([value, quote(value, safe=""), quote_plus(value)]))


def basic_value(username: str, password: Secret) -> tuple[Secret, str]:
    """(`Basic …` header value, its base64 part) for a username and password."""
    packed = base64.b64encode(f"{username}:{password.reveal()}".encode()).decode("ascii")
    return Secret(f"Basic {packed}"), packed


class CallCredentials:
    """The credentials of one call: injection and scrubbing."""

    __slots__ = ("_values", "placements", "refreshable")

    def __init__(
        self, placements: Iterable[Placement], secrets: Iterable[str], refreshable: Iterable[Any] = ()
    ) -> None:
        self.placements = tuple(placements)
        # Cached OAuth tokens this call used: a 401 invalidates them and the call is retried once.
        self.refreshable = tuple(refreshable)
        forms = [form for value in secrets for form in wire_forms(value)]
        self._values = SecretValues()
        self._values.add(*forms)
        SECRETS.add(*forms)

    @classmethod
    def none(cls) -> CallCredentials:
        return cls((), ())

    async def inject(self, request: httpx.Request) -> None:
        """Set every placement on `request`, replacing whatever an argument put there (THREATS A4)."""
        for placement in self.placements:
            value = placement.value.reveal()
            if placement.location == "header":
                request.headers[placement.name] = value
            elif placement.location == "query":
                request.url = request.url.copy_set_param(placement.name, value)
            else:
                request.headers["cookie"] = _with_cookie(request.headers.get("cookie"), placement.name, value)

    def scrub(self, text: str) -> str:
        return self._values.scrub(text)

    def scrub_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        return value


def _with_cookie(existing: str | None, name: str, value: str) -> str:
    crumbs = [c.strip() for c in (existing or "").split(";") if c.strip()]
    kept = [c for c in crumbs if c.split("=", 1)[0].strip() != name]
    return "; ".join([*kept, f"{name}={value}"])
