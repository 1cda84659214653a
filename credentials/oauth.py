"""OAuth 2.0 access tokens for upstream calls: client-credentials and refresh-token grants.

Tokens are cached per credential row, token URL and scopes until shortly before they expire;
one request per key fetches while concurrent calls wait for it. A 401 from the upstream
invalidates the token the call used (`invalidate`) and the call is retried once with a fresh one.
A refresh token the provider rotates is stored back, sealed, at once. The token endpoint is
reached through the same egress guard as the source (no redirects, private hosts only when
allowlisted); its error bodies are never shown, only the status and the RFC 6749 error code.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode

import anyio
import httpx

from credentials.errors import CredentialUnavailable
from credentials.injector import basic_value
from credentials.masked import Secret
from credentials.vault import Credential, Vault
from server.logs import SECRETS
from tools.openapi.errors import EgressBlocked
from tools.openapi.responses import read_capped
from tools.openapi.urlsafety import EgressGuard, EgressPolicy, GuardedTransport, Resolver

__all__ = ["CachedToken", "TokenEndpoint", "TokenSource"]

_SKEW_S = 30.0
_DEFAULT_LIFETIME_S = 300.0
_MAX_BODY = 64 * 1024
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
GRANTS = {"oauth-client": "client_credentials", "oauth-refresh": "refresh_token"}


@dataclass(frozen=True, slots=True)
class TokenEndpoint:
    url: str
    scopes: tuple[str, ...] = ()
    client_auth: Literal["basic", "post"] = "basic"


@dataclass(frozen=True, slots=True)
class CachedToken:
    key: tuple[str, str, tuple[str, ...]]
    token: Secret
    expires_at: float


class TokenSource:
    """Fetches and caches access tokens for one source's OAuth credentials."""

    def __init__(
        self,
        vault: Vault,
        *,
        allow_private_hosts: Iterable[str] = (),
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        resolver: Resolver | None = None,
    ) -> None:
        self.vault = vault
        self.clock = clock
        self._tokens: dict[tuple[str, str, tuple[str, ...]], CachedToken] = {}
        self._locks: dict[tuple[str, str, tuple[str, ...]], anyio.Lock] = {}
        guard = EgressGuard(EgressPolicy.from_allowlist(allow_private_hosts), resolver)
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(httpx.AsyncHTTPTransport(trust_env=False), guard),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
        )
        self.fetches = 0

    async def token(self, credential: Credential, endpoint: TokenEndpoint) -> CachedToken:
        """A valid access token for `credential`, from the cache or the token endpoint.

        Raises:
            CredentialUnavailable: the endpoint refused, failed or answered nonsense.
        """
        key = (credential.row_id, endpoint.url, endpoint.scopes)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > self.clock():
            return cached
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > self.clock():
                return cached
            fresh = await self._fetch(credential, endpoint, key)
            self._tokens[key] = fresh
            return fresh

    def invalidate(self, token: CachedToken) -> None:
        """Forget `token` (the upstream refused it) unless a newer one already replaced it."""
        if self._tokens.get(token.key) is token:
            del self._tokens[token.key]

    async def _fetch(
        self, credential: Credential, endpoint: TokenEndpoint, key: tuple[str, str, tuple[str, ...]]
    ) -> CachedToken:
        grant = GRANTS.get(credential.kind)
        if grant is None:
            raise CredentialUnavailable(credential.name, f"is a '{credential.kind}' credential, not an OAuth client")
        client_id = credential.attrs.get("client_id", "")
        form: dict[str, str] = {"grant_type": grant}
        headers = {"accept": "application/json", "content-type": "application/x-www-form-urlencoded"}
        client_secret = credential.secrets.get("client_secret")
        if grant == "refresh_token":
            form["refresh_token"] = credential.secret("refresh_token").reveal()
        if endpoint.scopes:
            form["scope"] = " ".join(endpoint.scopes)
        if client_secret is not None and endpoint.client_auth == "basic":
            # RFC 6749 2.3.1: the id and secret are form-encoded before they are joined.
            header, _ = basic_value(quote(client_id, safe=""), Secret(quote(client_secret.reveal(), safe="")))
            headers["authorization"] = header.reveal()
        else:
            form["client_id"] = client_id
            if client_secret is not None:
                form["client_secret"] = client_secret.reveal()
        SECRETS.add(*(s.reveal() for s in credential.secrets.values()))
        self.fetches += 1
        data = await self._post(credential.name, endpoint.url, headers, urlencode(form).encode("ascii"))
        access = data.get("access_token")
        kind = data.get("token_type", "bearer")
        if not isinstance(access, str) or not access or not isinstance(kind, str) or kind.lower() != "bearer":
            raise CredentialUnavailable(credential.name, "got no bearer access token from the token endpoint")
        SECRETS.add(access)
        rotated = data.get("refresh_token")
        if grant == "refresh_token" and isinstance(rotated, str) and rotated:
            SECRETS.add(rotated)
            # Stored before the new access token is used: the old refresh token may be dead now.
            self.vault.replace_secrets(credential, {"refresh_token": rotated})
        lifetime = data.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else _DEFAULT_LIFETIME_S
        margin = min(_SKEW_S, seconds / 2)
        return CachedToken(key=key, token=Secret(access), expires_at=self.clock() + seconds - margin)

    async def _post(self, name: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, object]:
        request = httpx.Request("POST", url, headers=headers, content=body)
        try:
            response = await self._client.send(request, stream=True)
            try:
                raw = await read_capped(response, _MAX_BODY)
            finally:
                await response.aclose()
        except EgressBlocked as exc:
            raise CredentialUnavailable(name, f"token endpoint refused: {exc.reason}") from None
        except (httpx.HTTPError, OSError):
            raise CredentialUnavailable(name, "token endpoint unreachable") from None
        except Exception as exc:  # a ToolFailure from the capped reader (too large)
            raise CredentialUnavailable(name, f"token endpoint answer unusable ({type(exc).__name__})") from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            code = data.get("error") if isinstance(data, dict) else None
            detail = f" ({code})" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""
            raise CredentialUnavailable(name, f"token endpoint answered HTTP {response.status_code}{detail}")
        return data

    async def aclose(self) -> None:
        await self._client.aclose()
