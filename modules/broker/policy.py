"""What a module may ask the broker for: the origins of its manifest and no control headers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import httpx

from modules.broker.types import EgressRefused

__all__ = ["ALLOWED_METHODS", "REFUSED_HEADERS", "Origin", "OriginAllowlist", "check_headers"]

ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Credentials are the broker's to add; framing and routing headers are the HTTP client's.
REFUSED_HEADERS = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "cookie2", "x-api-key", "api-key", "apikey",
        "x-auth-token", "x-access-token", "x-csrf-token", "host", "content-length", "transfer-encoding",
        "connection", "keep-alive", "te", "trailer", "upgrade", "expect", "forwarded", "via",
    }
)  # fmt: skip
_REFUSED_PREFIXES = ("proxy-", "x-forwarded-", "sec-")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_MAX_HEADERS = 64
_MAX_VALUE_CHARS = 8192

Origin = tuple[str, str, int]  # (scheme, host, port)


def _origin_of(url: httpx.URL) -> Origin:
    scheme = url.scheme.lower()
    port = url.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, url.host.lower().rstrip("."), port


class OriginAllowlist:
    """The manifest's `scheme://host:port` entries; a request must match one exactly."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.origins: frozenset[Origin] = frozenset(self.parse(entry) for entry in entries)

    @staticmethod
    def parse(entry: str) -> Origin:
        """Raises: ValueError: the entry is not an http(s) origin without path, query or userinfo."""
        try:
            url = httpx.URL(entry.strip())
        except httpx.InvalidURL as exc:
            raise ValueError(f"egress entry {entry!r} is not a URL: {exc}") from None
        if url.scheme not in _DEFAULT_PORTS or not url.host:
            raise ValueError(f"egress entry {entry!r} must be http:// or https://")
        if url.userinfo or url.query or url.fragment or url.path not in ("", "/"):
            raise ValueError(f"egress entry {entry!r} must be scheme://host:port only")
        return _origin_of(url)

    def admit(self, raw_url: str) -> httpx.URL:
        """The parsed URL, if it names an allowlisted origin.

        Raises:
            EgressRefused: not a valid absolute http(s) URL, carries userinfo, or its origin is not listed.
        """
        try:
            url = httpx.URL(raw_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise EgressRefused("invalid", f"not a valid URL: {exc}") from None
        if url.scheme not in _DEFAULT_PORTS or not url.host:
            raise EgressRefused("invalid", "only absolute http:// and https:// URLs can be requested")
        if url.userinfo:
            raise EgressRefused("invalid", "URLs must not carry user information")
        scheme, host, port = _origin_of(url)
        if (scheme, host, port) not in self.origins:
            raise EgressRefused("origin", f"{scheme}://{host}:{port} is not in the module's egress allowlist")
        return url.copy_with(fragment=None)

    @property
    def ip_hosts(self) -> list[str]:
        return [host for _, host, _ in self.origins]


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The module's headers, if none is a credential, control or malformed header.

    Raises:
        EgressRefused: a header the module may not set (reason `header`).
    """
    if len(headers) > _MAX_HEADERS:
        raise EgressRefused("header", f"more than {_MAX_HEADERS} headers")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if not _TOKEN.fullmatch(name):
            raise EgressRefused("header", f"header name {name[:40]!r} is not a valid token")
        if lowered in REFUSED_HEADERS or lowered.startswith(_REFUSED_PREFIXES):
            why = "credentials and connection headers are the server's to set"
            raise EgressRefused("header", f"the module may not set the {name} header ({why})")
        if len(value) > _MAX_VALUE_CHARS or any(ch in value for ch in "\r\n\0"):
            raise EgressRefused("header", f"header {name} has a value that is too long or holds CR, LF or NUL")
        checked[name] = value
    return checked
