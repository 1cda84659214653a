"""How an OpenAPI call fails: the executor's errors, translated from httpx at one boundary.

Each is a `ToolFailure`, so the caller gets an `isError` result an agent can act on and the
server stays up. Messages never echo what a blocked or internal address would have answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tools.errors import SetupError, ToolFailure, UpstreamFailure

__all__ = [
    "BaseUrlRefused",
    "EgressBlocked",
    "RequestRefused",
    "ResponseTooLarge",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnreachable",
    "translate_httpx_errors",
]


class RequestRefused(ToolFailure):
    """An argument would make an unsafe request (path traversal, CR/LF in a header, a control header).

    Nothing is sent upstream.
    """


class EgressBlocked(UpstreamFailure):
    """The request would reach an address the source may not reach (THREATS S2, S4).

    Private, loopback, link-local and similar ranges are refused unless the source allowlists them.
    """

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"Request to host '{host}' blocked: {reason}")
        self.host = host
        self.reason = reason


class UpstreamError(UpstreamFailure):
    """The upstream answered with a status outside 2xx; the message carries a bounded body."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        head = f"Upstream returned HTTP {status}" + (f" {reason}" if reason else "")
        super().__init__(f"{head}: {body}" if body else head)
        self.status = status
        self.body = body


class UpstreamTimeout(UpstreamFailure):
    """One phase (connect, read, write, pool) or the whole exchange (total) ran out of time."""

    def __init__(self, phase: str, seconds: float | None = None) -> None:
        after = "" if seconds is None else f" after {seconds:g} s"
        super().__init__(f"Upstream timed out ({phase}){after}")
        self.phase = phase
        self.seconds = seconds


class UpstreamUnreachable(UpstreamFailure):
    """No connection could be made, or the upstream broke the HTTP exchange."""


class ResponseTooLarge(UpstreamFailure):
    """The decoded response body passed the source's cap; reading stopped and the connection closed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"Upstream response too large: more than {limit} bytes after decoding")
        self.limit = limit


class BaseUrlRefused(SetupError):
    """A source's base URL is unusable or points where the source may not go; found at load time."""


@contextmanager
def translate_httpx_errors(origin: str, timeouts: httpx.Timeout) -> Iterator[None]:
    """Turn httpx's exceptions into ours for one exchange with `origin`.

    Raises:
        UpstreamTimeout: a connect/read/write/pool timeout.
        UpstreamUnreachable: a connection or protocol failure.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        phase, seconds = _phase_of(exc, timeouts)
        raise UpstreamTimeout(phase, seconds) from None
    except httpx.ConnectError:
        raise UpstreamUnreachable(f"Could not connect to upstream {origin}") from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError):
        raise UpstreamUnreachable(f"Upstream {origin} broke off the HTTP exchange") from None
    except httpx.TransportError as exc:
        raise UpstreamUnreachable(f"Upstream {origin} failed: {type(exc).__name__}") from None


def _phase_of(exc: httpx.TimeoutException, timeouts: httpx.Timeout) -> tuple[str, float | None]:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect", timeouts.connect
    if isinstance(exc, httpx.ReadTimeout):
        return "read", timeouts.read
    if isinstance(exc, httpx.WriteTimeout):
        return "write", timeouts.write
    return "pool", timeouts.pool
