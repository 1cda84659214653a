"""How a module's manifest declares a credential: its handle, where its value goes, and for which origin.

    [[credentials]]
    handle = "weather_key"      # the name it is stored under: `toolkiln credentials set weather_key`
    in = "header"               # header | query | cookie, with name = the header, key or cookie
    name = "X-Api-Key"
    # or instead of in/name:  scheme = "bearer" | "basic"  (the Authorization header)
    origin = "https://api.weather.example:443"  # one of the egress entries; optional when there is one
    per_principal = false       # true: each calling principal's own (`credentials set --principal P`)

The placement is part of the manifest, whose hash the approval pins: a module cannot move a
credential somewhere else once a person has approved where it goes. A placement may not be a
header the HTTP client owns (Host, Content-Length, …), and two credentials may not share a place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["HANDLE_PATTERN", "ModuleCredential", "Place", "credential_problems"]

Place = Literal["header", "query", "cookie"]
HANDLE_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,63}$")
# Framing and routing headers are the HTTP client's; a cookie goes in with `in = "cookie"`.
_NOT_A_PLACE = frozenset(
    {
        "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "te",
        "trailer", "upgrade", "expect", "forwarded", "via", "cookie", "cookie2", "user-agent", "accept",
        "accept-encoding",
    }
)  # fmt: skip
_NOT_A_PLACE_PREFIXES = ("proxy-", "x-forwarded-", "sec-")


class ModuleCredential(BaseModel):
    """One `[[credentials]]` table: a credential the broker adds to the module's requests."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, serialize_by_alias=True)

    handle: str = Field(pattern=HANDLE_PATTERN)
    location: Place | None = Field(default=None, alias="in")
    name: str | None = Field(default=None, max_length=64)
    scheme: Literal["bearer", "basic"] | None = None
    origin: str | None = Field(default=None, max_length=300)
    per_principal: bool = False

    @model_validator(mode="before")
    @classmethod
    def _a_table(cls, data: Any) -> Any:
        if isinstance(data, str):
            # A bare handle says nothing about where the value goes, so it cannot be injected.
            raise ValueError(
                f"{data[:64]!r} is a bare handle; declare a [[credentials]] table with handle and "
                "in = header|query|cookie plus name, or scheme = bearer|basic"
            )
        return data

    @model_validator(mode="after")
    def _placement(self) -> ModuleCredential:
        problems = []
        if (self.location is None) == (self.scheme is None):
            problems.append("give either in = header|query|cookie with a name, or scheme = bearer|basic")
        elif self.location is not None and self.name is None:
            problems.append(f"in = {self.location} needs name = the {self.location} name")
        elif self.scheme is not None and self.name is not None:
            problems.append(f"scheme = {self.scheme} places it in the Authorization header; drop name")
        if self.name is not None and not _NAME.fullmatch(self.name):
            problems.append(f"name {self.name[:64]!r} is not a plain header, query or cookie name")
        elif self.location == "header" and self.name is not None:
            lowered = self.name.lower()
            if lowered in _NOT_A_PLACE or lowered.startswith(_NOT_A_PLACE_PREFIXES):
                problems.append(f"{self.name} is not a header a credential can go in")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def target(self) -> tuple[Place, str]:
        """Where the value lands on the wire: (`header`|`query`|`cookie`, name); header names lowercased."""
        if self.scheme is not None:
            return "header", "authorization"
        assert self.location is not None
        assert self.name is not None
        return self.location, self.name.lower() if self.location == "header" else self.name

    def describe(self) -> str:
        where = f"Authorization ({self.scheme})" if self.scheme else f"{self.location} {self.name}"
        whose = ", each caller's own" if self.per_principal else ""
        return f"{self.handle} → {where}{whose}"

    def origin_in(self, egress: Sequence[str]) -> str:
        """The egress entry this credential is for (checked by `credential_problems`)."""
        return self.origin if self.origin is not None else egress[0]


def credential_problems(declared: Sequence[ModuleCredential], egress: Sequence[str]) -> list[str]:
    """What is wrong with the declarations as a set, against the manifest's egress allowlist."""
    problems = []
    listed = {entry.lower(): entry for entry in egress}
    places: dict[tuple[str, str, str], str] = {}
    handles: set[str] = set()
    for index, credential in enumerate(declared):
        where = f"credentials.{index} ({credential.handle})"
        if credential.handle in handles:
            problems.append(f"{where}: the handle is declared twice")
        handles.add(credential.handle)
        if credential.origin is None and len(egress) != 1:
            problems.append(
                f"{where}: origin is required (egress lists {len(egress)} origins; name the one it is for)"
                if egress
                else f"{where}: the manifest has no egress origin to send it to"
            )
            continue
        origin = credential.origin_in(egress)
        if origin.lower() not in listed:
            problems.append(f"{where}: origin {origin[:80]!r} is not one of the egress entries")
            continue
        place = (listed[origin.lower()], *credential.target)
        if place in places:
            problems.append(f"{where}: goes into the same {place[1]} as {places[place]} for {place[0]}")
        places.setdefault(place, credential.handle)
    return problems
