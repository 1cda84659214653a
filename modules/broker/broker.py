"""The egress broker: sends a module's HTTP request only if its manifest allows it, with the
module's credentials added here (the module never holds them), no redirects followed, and size and
time caps; secrets the upstream echoes back are scrubbed before the module sees the answer.

Each request is checked in this order, and nothing is sent unless every check passes: method,
origin (exact `scheme://host:port` match against the allowlist), headers (no credential, control
or malformed header), body size. The connection then goes to an address vetted by the same guard
the OpenAPI executor uses (`tools.openapi.urlsafety`): a DNS name in the allowlist must resolve to
public addresses and is pinned; a private address is reachable only when the allowlist names it
literally (`http://127.0.0.1:8080`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx
import structlog

from modules.broker.policy import ALLOWED_METHODS, OriginAllowlist, check_headers
from modules.broker.types import EgressRefused, EgressRequest, EgressResponse
from tools.openapi.errors import EgressBlocked
from tools.openapi.urlsafety import EgressGuard, EgressPolicy, GuardedTransport, parse_ip

__all__ = ["Broker", "BrokerLimits", "Injection", "Injector", "NoCredentials"]

log = structlog.get_logger("toolkiln.modules.broker")

# Only these response headers reach the module: enough to read a body and follow pagination.
_PASSED_HEADERS = frozenset(
    {"content-type", "content-language", "etag", "last-modified", "link", "retry-after", "date", "location"}
    | {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-total-count"}
)


class Injection(Protocol):
    """One request's credentials (`credentials.injector.CallCredentials` has this shape)."""

    async def inject(self, request: httpx.Request) -> None: ...

    def scrub(self, text: str) -> str: ...


# (origin `scheme://host:port`, the module's credential handles) → the injection for that request.
Injector = Callable[[str, tuple[str, ...]], Awaitable[Injection]]


class NoCredentials:
    """For a module that declares no credential handles."""

    async def inject(self, request: httpx.Request) -> None:
        return None

    def scrub(self, text: str) -> str:
        return text


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 1024 * 1024  # decoded bytes, so a gzip bomb stops at the cap too
    timeout_s: float = 10.0  # the whole exchange; a module may ask for less, never more
    connect_timeout_s: float = 5.0


class Broker:
    """The `HttpHandler` of one module version."""

    def __init__(
        self,
        egress: Sequence[str],
        *,
        credentials: Sequence[str] = (),
        injector: Injector | None = None,
        limits: BrokerLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Raises: ValueError: an allowlist entry is not a `scheme://host:port` origin."""
        self.allowlist = OriginAllowlist(egress)
        self.credentials = tuple(credentials)
        self.limits = limits or BrokerLimits()
        if self.credentials and injector is None:
            raise ValueError("a module with credential handles needs an injector")
        self._injector = injector
        literal_hosts = [host for host in self.allowlist.ip_hosts if _is_literal(host)]
        guard = EgressGuard(EgressPolicy.from_allowlist(literal_hosts))
        inner = transport or httpx.AsyncHTTPTransport(retries=0)
        timeout = httpx.Timeout(self.limits.timeout_s, connect=self.limits.connect_timeout_s)
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(inner, guard), follow_redirects=False, trust_env=False, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, request: EgressRequest) -> EgressResponse:
        """Send `request` on the module's behalf.

        Raises:
            EgressRefused: refused before sending (`invalid`, `origin`, `header`, `too_large`) or
                failed while sending (`redirect`, `too_large`, `timeout`, `unreachable`).
        """
        method = request.method.upper()
        if method not in ALLOWED_METHODS:
            raise EgressRefused("invalid", f"method {method[:16]!r} is not allowed")
        url = self.allowlist.admit(request.url)
        headers = check_headers(request.headers)
        body = request.body or b""
        if len(body) > self.limits.max_request_bytes:
            raise EgressRefused("too_large", f"request body over {self.limits.max_request_bytes} bytes")
        origin = f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        injection: Injection = NoCredentials()
        if self.credentials and self._injector is not None:
            injection = await self._injector(origin, self.credentials)
        outgoing = self._client.build_request(method, url, headers=headers, content=body or None)
        await injection.inject(outgoing)
        timeout = self.limits.timeout_s
        if request.timeout_s is not None:
            timeout = max(0.1, min(request.timeout_s, timeout))
        try:
            with anyio.fail_after(timeout):
                response = await self._exchange(outgoing)
        except TimeoutError:
            raise EgressRefused("timeout", f"no complete answer within {timeout:g} s") from None
        log.info("module_egress", module=request.module, method=method, origin=origin, status=response.status)
        return _scrubbed(response, injection)

    async def _exchange(self, outgoing: httpx.Request) -> EgressResponse:
        cap = self.limits.max_response_bytes
        try:
            response = await self._client.send(outgoing, stream=True)
        except EgressBlocked as exc:
            raise EgressRefused("origin", exc.message) from None
        except httpx.TimeoutException:
            raise EgressRefused("timeout", "the upstream did not answer in time") from None
        except httpx.HTTPError as exc:
            raise EgressRefused("unreachable", f"the upstream could not be reached ({type(exc).__name__})") from None
        try:
            if response.is_redirect or 300 <= response.status_code < 400:
                status = response.status_code
                raise EgressRefused("redirect", f"the upstream answered {status}; redirects are not followed")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise EgressRefused("too_large", f"the response declares {declared} bytes, over the {cap} byte cap")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > cap:
                    raise EgressRefused("too_large", f"the response passed the {cap} byte cap")
        except httpx.TimeoutException:
            raise EgressRefused("timeout", "the upstream stalled") from None
        except httpx.HTTPError as exc:
            raise EgressRefused("unreachable", f"the exchange broke off ({type(exc).__name__})") from None
        finally:
            await response.aclose()
        headers = {name: value for name, value in response.headers.items() if name.lower() in _PASSED_HEADERS}
        return EgressResponse(status=response.status_code, headers=headers, body=bytes(body))


def _is_literal(host: str) -> bool:
    try:
        return parse_ip(host) is not None
    except EgressBlocked:
        return False


def _scrubbed(response: EgressResponse, injection: Injection) -> EgressResponse:
    # surrogateescape keeps non-UTF-8 bytes intact while the secret's text forms are replaced.
    text = response.body.decode("utf-8", "surrogateescape")
    body = injection.scrub(text).encode("utf-8", "surrogateescape")
    headers = {name: injection.scrub(value) for name, value in response.headers.items()}
    return EgressResponse(status=response.status, headers=headers, body=body)
