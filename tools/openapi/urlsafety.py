"""Where a source's requests may go (THREATS S2, S3, S4).

A request may reach only public unicast addresses, unless the source's `allow_private_hosts`
names the host or a network holding the address. Addresses are judged after resolution and after
unwrapping the IPv6 forms that embed an IPv4 address (IPv4-mapped, NAT64, 6to4), so
`::ffff:127.0.0.1` or `64:ff9b::a9fe:a9fe` cannot smuggle a private target past the check.
Numeric host spellings other than dotted-quad (`2130706433`, `0177.0.0.1`, `0x7f.1`) are refused
outright: resolvers read them as IP addresses while humans and allowlists do not.

`EgressGuard.admit` returns the address to connect to, and the transport connects to exactly that
address (Host header and TLS SNI keep the name), so a DNS answer that changes between check and
connect cannot redirect the request. The pool keys connections by that address, so two names
served from one address may share a kept-alive TLS connection; both names were vetted, and a
source normally talks to one host.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx

from tools.openapi.errors import BaseUrlRefused, EgressBlocked

__all__ = [
    "EgressGuard",
    "EgressPolicy",
    "GuardedTransport",
    "Resolver",
    "SystemResolver",
    "check_base_url",
    "is_public_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Never reachable through an allowlist by accident: local-use NAT64 and Teredo tunnels.
_ALWAYS_PRIVATE_V6 = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("2001::/32"))
_SCHEMES = ("http", "https")
_CACHE_LIMIT = 256


def parse_ip(host: str) -> IPAddress | None:
    """The address a literal host names, `None` for a DNS name.

    Raises:
        EgressBlocked: the host is a non-canonical numeric form (decimal, octal, hex, short).
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(bare):
        raise EgressBlocked(host, "numeric host in a non-canonical form")
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def is_public_address(ip: IPAddress) -> bool:
    """Globally routable unicast, looking through IPv6 forms that carry an IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _ALWAYS_PRIVATE_V6):
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The source's exceptions to "public addresses only": host names, addresses or networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_allowlist(cls, entries: Iterable[str]) -> EgressPolicy:
        """`["127.0.0.1", "10.0.0.0/8", "localhost"]` → a policy.

        Raises:
            BaseUrlRefused: an entry is a non-canonical numeric host.
        """
        hosts: set[str] = set()
        networks = []
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if _NUMERIC_HOST.fullmatch(text):
                raise BaseUrlRefused(f"allow_private_hosts entry {entry!r} is not a canonical address")
            hosts.add(text)
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        return is_public_address(ip) or any(ip.version == net.version and ip in net for net in self.networks)


def check_base_url(url: str, policy: EgressPolicy) -> httpx.URL:
    """Parse and vet a source's base URL at load time.

    Raises:
        BaseUrlRefused: not absolute http(s), carries userinfo, a query or a fragment, or names an
            address outside the policy.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BaseUrlRefused(f"base URL {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise BaseUrlRefused(f"base URL {url!r} must be an absolute http:// or https:// URL")
    if parsed.userinfo:
        raise BaseUrlRefused("base URL must not carry user information (user:password@)")
    if parsed.query or parsed.fragment:
        raise BaseUrlRefused(f"base URL {url!r} must not carry a query or fragment")
    try:
        _vet_literal(parsed.host, policy)
    except EgressBlocked as exc:
        raise BaseUrlRefused(f"base URL {url!r}: {exc.reason} (add it to allow_private_hosts to allow it)") from None
    return parsed


def _vet_literal(host: str, policy: EgressPolicy) -> IPAddress | None:
    ip = parse_ip(host)
    if ip is not None and not policy.allows_host(host) and not policy.allows_address(ip):
        raise EgressBlocked(host, "private or reserved address")
    return ip


class Resolver(Protocol):
    """Host name → addresses. The system resolver in production, a table in tests."""

    async def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    """`getaddrinfo` on a worker thread."""

    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]


class EgressGuard:
    """Decides, per request, whether and where to connect; caches vetted answers briefly."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver | None = None, *, cache_ttl_s: float = 30.0) -> None:
        self.policy = policy
        self._resolver = resolver or SystemResolver()
        self._ttl = cache_ttl_s
        self._cache: dict[tuple[str, int], tuple[float, str]] = {}

    async def admit(self, url: httpx.URL) -> str:
        """The address to connect to for `url`.

        Raises:
            EgressBlocked: wrong scheme, userinfo, or an address outside the policy.
        """
        host = url.host
        if url.scheme not in _SCHEMES:
            raise EgressBlocked(host, f"scheme '{url.scheme}' is not http or https")
        if url.userinfo:
            raise EgressBlocked(host, "URL carries user information")
        ip = _vet_literal(host, self.policy)
        if ip is not None:
            return host
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (host, port)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        address = await self._resolve_vetted(host, port)
        if len(self._cache) >= _CACHE_LIMIT:
            # Redirect targets are upstream-chosen names; never let them grow the cache unbounded.
            self._cache.clear()
        self._cache[key] = (now + self._ttl, address)
        return address

    async def _resolve_vetted(self, host: str, port: int) -> str:
        try:
            addresses = await self._resolver.resolve(host, port)
        except OSError:
            raise EgressBlocked(host, "the name does not resolve") from None
        if not addresses:
            raise EgressBlocked(host, "the name does not resolve")
        named = self.policy.allows_host(host)
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
            # Every answer must pass: a mixed answer is how rebinding attacks hedge their bets.
            if not named and not self.policy.allows_address(ip):
                raise EgressBlocked(host, "resolves to a private or reserved address")
        return addresses[0].split("%", 1)[0]


class GuardedTransport(httpx.AsyncBaseTransport):
    """Vets every request (each redirect hop included) and connects to the vetted address."""

    def __init__(self, inner: httpx.AsyncBaseTransport, guard: EgressGuard) -> None:
        self._inner = inner
        self.guard = guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        address = await self.guard.admit(url)
        if address != url.host:
            # The Host header was fixed when the request was built; SNI and certificate checks
            # must keep using the name too. A copy, so a retry of `request` is vetted afresh.
            extensions = dict(request.extensions)
            if url.scheme == "https":
                extensions["sni_hostname"] = url.host
            request = httpx.Request(
                request.method,
                url.copy_with(host=address),
                headers=request.headers,
                stream=request.stream,
                extensions=extensions,
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
