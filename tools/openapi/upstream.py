"""One OpenAPI source's upstream: base URL, pooled client, limits, egress policy, auth seam.

Every tool of a source shares one `Upstream` and so one `httpx.AsyncClient` connection pool.
`exchange` is the only place a request leaves the process: it applies the overall deadline,
runs the credential hook on same-origin hops only, follows redirects only when the source allows
it (re-vetting every hop), reads the body under the decoded-size cap and always releases the
connection, whatever happens (THREATS S4, S6, S7).
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx

from server.version import __version__
from tools.errors import UpstreamFailure
from tools.model import ToolResult
from tools.openapi.errors import EgressBlocked, UpstreamError, UpstreamTimeout, translate_httpx_errors
from tools.openapi.pooled_transport import PooledTransport
from tools.openapi.responses import read_capped, to_tool_result
from tools.openapi.urlsafety import EgressGuard, EgressPolicy, GuardedTransport, Resolver, check_base_url

__all__ = ["Inject", "Upstream", "UpstreamConfig", "UpstreamLimits", "default_headers"]

# The credentials seam: called with the finished request just before it is sent, and only when
# the request goes to the source's own origin (never to a redirect target elsewhere). It must
# *replace* what it sets (a header, or a query key via `copy_set_param`), so an argument that
# names the same header or query key can never shadow or accompany the credential (THREATS A4).
Inject = Callable[[httpx.Request], Awaitable[None]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = f"toolkiln/{__version__}".encode("ascii")
# Only encodings `responses.read_capped` can inflate under its cap.
ACCEPT_ENCODING = b"gzip, deflate"


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """Timeouts, caps and redirect policy; the defaults are the secure ones."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    pool_timeout_s: float = 10.0
    # The whole exchange, redirects and body included: a slow drip that never trips the read
    # timeout still ends here.
    total_timeout_s: float = 60.0
    max_response_bytes: int = 10 * 1024 * 1024
    max_error_body_chars: int = 2000
    # Open connections to the upstream at most; idle ones stay pooled (a smaller idle pool made
    # 50 concurrent callers close and reopen connections on every call).
    max_connections: int = 64
    follow_redirects: bool = False
    max_redirects: int = 5


class UpstreamConfig(Protocol):
    """The upstream knobs of a source's settings (`tools.openapi.settings.OpenApiSourceSettings`)."""

    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def read_timeout_s(self) -> float: ...
    @property
    def total_timeout_s(self) -> float: ...
    @property
    def max_response_bytes(self) -> int: ...
    @property
    def follow_redirects(self) -> bool: ...
    @property
    def allow_private_hosts(self) -> tuple[str, ...]: ...


def _no_cookie_jar() -> httpx.Cookies:
    # Set-Cookie from one call must never ride along on another principal's call.
    return httpx.Cookies(http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])))


class Upstream:
    """The shared state of one source's HTTP calls.

    Raises (constructor):
        BaseUrlRefused: the base URL is unusable or outside the egress policy.
    """

    def __init__(
        self,
        base_url: str,
        *,
        limits: UpstreamLimits | None = None,
        allow_private_hosts: Iterable[str] = (),
        inject: Inject | None = None,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.limits = limits = limits or UpstreamLimits()
        self.policy = EgressPolicy.from_allowlist(allow_private_hosts)
        self.base_url = check_base_url(base_url, self.policy)
        self.origin = str(self.base_url.copy_with(raw_path=b"/"))[:-1]
        self.base_path = self.base_url.raw_path.decode("ascii").rstrip("/")
        self.inject = inject
        self.timeouts = httpx.Timeout(
            connect=limits.connect_timeout_s,
            read=limits.read_timeout_s,
            write=limits.write_timeout_s,
            pool=limits.pool_timeout_s,
        )
        self.timeout_extension = self.timeouts.as_dict()
        inner = transport or PooledTransport(max_connections=limits.max_connections)
        self.guard = EgressGuard(self.policy, resolver)
        # Calls go straight to the guarded transport: the client's auth, redirect and cookie
        # machinery is all switched off here and cost ~0.1 ms a call for nothing. The client
        # (same transport) serves one-off requests such as `toolkiln doctor`'s and owns closing.
        self.transport = GuardedTransport(inner, self.guard)
        # Requests are built by the executors, not `client.build_request`, so nothing from the
        # environment (proxies, .netrc) or earlier responses (cookies) is ever merged in.
        self.client = httpx.AsyncClient(
            transport=self.transport,
            timeout=self.timeouts,
            follow_redirects=False,
            trust_env=False,
            cookies=_no_cookie_jar(),
        )

    @classmethod
    def from_settings(cls, base_url: str, settings: UpstreamConfig, *, inject: Inject | None = None) -> Upstream:
        """The upstream of a configured source.

        Raises:
            BaseUrlRefused: the base URL is unusable or outside the source's egress policy.
        """
        limits = UpstreamLimits(
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            write_timeout_s=settings.read_timeout_s,
            total_timeout_s=settings.total_timeout_s,
            max_response_bytes=settings.max_response_bytes,
            follow_redirects=settings.follow_redirects,
        )
        return cls(base_url, limits=limits, allow_private_hosts=settings.allow_private_hosts, inject=inject)

    def same_origin(self, url: httpx.URL) -> bool:
        base = self.base_url
        return url.scheme == base.scheme and url.host == base.host and url.port == base.port

    def request(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], content: bytes | None
    ) -> httpx.Request:
        """A request carrying our timeouts (they travel as an extension, as httpx's own builder does)."""
        return httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": self.timeout_extension}
        )

    async def exchange(self, request: httpx.Request, *, inject: Inject | None = None) -> ToolResult:
        """Send `request` (plus permitted redirects) and turn the answer into a tool result.

        `inject`, when given, replaces the source's hook for this request only (a call's own,
        per-principal credentials); it runs under the same same-origin rule.

        Raises:
            UpstreamTimeout, UpstreamUnreachable, EgressBlocked, ResponseTooLarge, UpstreamError,
            UpstreamFailure: as the exchange fails; the connection is released in every case.
        """
        total = self.limits.total_timeout_s
        try:
            with anyio.fail_after(total):
                return await self._exchange(request, self.inject if inject is None else inject)
        except TimeoutError:
            raise UpstreamTimeout("total", total) from None

    async def _exchange(self, request: httpx.Request, inject: Inject | None) -> ToolResult:
        limits = self.limits
        url = request.url
        for _ in range(limits.max_redirects + 1):
            if inject is not None and self.same_origin(url):
                await inject(request)
            with translate_httpx_errors(self.origin, self.timeouts):
                response = await self._send(request)
                try:
                    status = response.status_code
                    if status in _REDIRECTS:
                        location = response.headers.get("location")
                        if not limits.follow_redirects or not location:
                            raise UpstreamError(status, response.reason_phrase, "redirect not followed")
                        request = self._redirected(request, url, status, location)
                        url = request.url
                        continue
                    body = await read_capped(response, limits.max_response_bytes)
                finally:
                    # Shielded: a cancelled call must still hand its connection back (or close it).
                    with anyio.CancelScope(shield=True):
                        await response.aclose()
            return to_tool_result(response, body, max_error_chars=limits.max_error_body_chars)
        raise UpstreamFailure(f"Upstream redirected more than {limits.max_redirects} times")

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._send_once(request)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if request.method not in _IDEMPOTENT:
                raise
        # A kept-alive connection can be dead or poisoned (an upstream that sent more than its
        # Content-Length) without the pool knowing; the failed connection is now discarded, and
        # an idempotent request gets one fresh attempt, as browsers and urllib3 do.
        return await self._send_once(request)

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        """The response with its body still unread (what `client.send(request, stream=True)` gives)."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    def _redirected(self, request: httpx.Request, url: httpx.URL, status: int, location: str) -> httpx.Request:
        try:
            target = url.join(location)
        except httpx.InvalidURL:
            raise UpstreamFailure("Upstream redirected to an invalid URL") from None
        if url.scheme == "https" and target.scheme != "https":
            raise EgressBlocked(target.host, "redirect from https to a non-https URL")
        method = request.method
        content: bytes | None = request.content if method not in ("GET", "HEAD") else None
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, content = "GET", None
        if self.same_origin(target):
            headers = [(k, v) for k, v in request.headers.raw if k.lower() not in (b"host", b"content-length")]
            if content is None:
                headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
        else:
            # Another origin gets nothing an argument or a credential put on the request.
            headers = [(b"accept", b"*/*"), (b"accept-encoding", ACCEPT_ENCODING), (b"user-agent", USER_AGENT)]
            content = None
        return self.request(method, str(target), headers, content)

    async def aclose(self) -> None:
        await self.client.aclose()


def default_headers(accept: str | None, extra: Mapping[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    """The headers every request of a tool starts from."""
    headers = [
        (b"accept", (accept or "application/json, */*;q=0.5").encode("latin-1")),
        (b"accept-encoding", ACCEPT_ENCODING),
        (b"user-agent", USER_AGENT),
    ]
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("ascii"), value.encode("latin-1")))
    return headers
