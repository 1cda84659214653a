"""httpx's transport interface over aiohttp's connection pool and C HTTP parser.

Why not httpx's own transport: httpcore's pool checks every idle connection for expiry (a poll
syscall and an anyio attribute lookup each) on every request, and parses HTTP in pure Python. At
50 concurrent calls to one upstream that cost ~1.1 ms of CPU per request on a core of this
machine; aiohttp's pool and parser do the same exchange in ~0.07 ms. The httpx request and response
models, our guard (`urlsafety.GuardedTransport`), the capped reader and the error translation stay
as they are: this module only moves bytes, and raises httpx's exceptions so nothing above it can
tell the difference.

What it keeps from the rest of the executor's rules:
- the URL goes out byte for byte as httpx encoded it (no re-quoting of path or query);
- no cookies, no proxies from the environment, no redirects, no decompression (the capped reader
  inflates under its own limit), and no header the request did not carry;
- the `sni_hostname` extension (set when the guard pinned a vetted address) names the host for
  TLS and certificate checks;
- an unread or failed response closes its connection instead of returning it to the pool.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp

__all__ = ["PooledTransport"]

# Headers aiohttp would otherwise add on its own; a request carries exactly what it was built with.
_NO_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


@contextmanager
def _as_httpx_errors(request: httpx.Request, *, reading: bool) -> Iterator[None]:
    """Re-raise aiohttp's failures as the httpx exceptions `errors.translate_httpx_errors` knows."""
    import aiohttp

    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from None
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from None
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        # A kept-alive connection the upstream had closed, a truncated or malformed message.
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from None
    except (aiohttp.ClientError, OSError) as exc:
        error = httpx.ReadError if reading else httpx.WriteError
        raise error(str(exc) or type(exc).__name__, request=request) from None


class _ResponseBody(httpx.AsyncByteStream):
    """The raw (still encoded) body, streamed; closing it hands the connection back only when it was read to the end."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request, reading=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()
        else:
            # Part of the body is still on the wire: the connection cannot carry another request.
            response.close()


class PooledTransport(httpx.AsyncBaseTransport):
    """One upstream's keep-alive pool (`max_connections` open at most), created on the first request.

    The aiohttp session belongs to the event loop it was created on; a request from another loop
    (a test's, a CLI command's) gets a fresh session, and the old one is dropped.
    """

    def __init__(
        self, *, max_connections: int, keepalive_expiry_s: float = 5.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry_s = keepalive_expiry_s
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The system's trust store unless given; loaded on the first request (it takes ~35 ms).
        self._ssl = ssl_context

    def _session_here(self) -> aiohttp.ClientSession:
        # Imported on the first request, not with the server: aiohttp takes ~120 ms to import,
        # which every start-up (and the first tools/list) would otherwise pay.
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry_s,
                ssl=self._ssl,
                use_dns_cache=False,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                raise_for_status=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._session, self._loop = session, loop
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from multidict import CIMultiDict
        from yarl import URL

        session = self._session_here()
        body = await request.aread()
        headers = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw)
        extensions = request.extensions
        options: dict[str, Any] = {}
        sni = extensions.get("sni_hostname")
        if sni:
            options["server_hostname"] = sni
        with _as_httpx_errors(request, reading=False):
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=_timeout(extensions.get("timeout")),
                **options,
            )
        return httpx.Response(
            response.status,
            headers=list(response.raw_headers),
            stream=_ResponseBody(response, request),
            extensions={
                "http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode("ascii")
                if response.version
                else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _timeout(spec: object) -> aiohttp.ClientTimeout:
    """httpx's per-phase timeouts (the request's `timeout` extension) in aiohttp's terms."""
    import aiohttp

    phases = spec if isinstance(spec, dict) else {}
    connect = phases.get("connect")
    pool = phases.get("pool")
    # aiohttp's `connect` covers waiting for a pooled connection plus opening one.
    waiting = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=phases.get("read"))
