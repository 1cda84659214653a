"""What crosses the seam between a worker and the egress broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["EgressRefused", "EgressRequest", "EgressResponse", "HttpHandler"]


@dataclass(frozen=True, slots=True)
class EgressRequest:
    """An HTTP request a module asked for; every field is module-controlled (hostile)."""

    module: str
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class EgressResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


class EgressRefused(Exception):
    """The broker did not send the request, or stopped reading the answer.

    `reason` is a short stable word (`origin`, `header`, `redirect`, `too_large`, `timeout`,
    `unreachable`, `invalid`, and from the injector `credential`) the module sees with the message.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class HttpHandler(Protocol):
    """Sends a module's request on its behalf (the broker; a test double in unit tests).

    Raises:
        EgressRefused: the request was refused or failed.
    """

    async def __call__(self, request: EgressRequest) -> EgressResponse: ...
