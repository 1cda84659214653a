"""The SDK `TokenVerifier` for HTTP and SSE: API tokens and JWTs in, an `IdentityToken` out.

The resulting `AccessToken` never holds the caller's secret (its `token` field is a fingerprint),
and the transport strips the `Authorization` header after authentication, so nothing downstream
— executors, upstream requests, logs — can see or forward the client's credential.

Its (client_id, issuer, subject) identify the principal, which the SDK uses to bind a session
to the principal that opened it: another principal presenting the session id gets 404.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from mcp.server.auth.provider import AccessToken

from server.identity.jwt import JwtVerifier
from server.identity.settings import HttpAuthSettings
from server.identity.tokens import TokenStore, looks_like_api_token

__all__ = ["API_TOKEN_ISSUER", "GatewayTokenVerifier", "IdentityToken"]

API_TOKEN_ISSUER = "toolkiln:api-token"  # noqa: S105 - an issuer name, not a secret
_CACHE_LIMIT = 10_000


class IdentityToken(AccessToken):
    """An `AccessToken` that also carries the principal and roles toolkiln resolved."""

    principal_id: str
    roles: tuple[str, ...] = ()
    kind: str = "api_token"


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class GatewayTokenVerifier:
    """Implements `mcp.server.auth.provider.TokenVerifier`."""

    def __init__(
        self,
        auth: HttpAuthSettings,
        *,
        tokens: Callable[[], TokenStore | None],
        jwt: JwtVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth = auth
        self._tokens = tokens
        self._jwt = jwt
        self._clock = clock
        self._cache: dict[str, tuple[float, IdentityToken]] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        if len(token) > 8192:
            return None
        if looks_like_api_token(token):
            return await self._api_token(token) if self.auth.api_tokens else None
        if self._jwt is None:
            return None
        identity = await self._jwt.verify(token)
        if identity is None:
            return None
        return IdentityToken(
            token=f"jwt:{_fingerprint(token)[:16]}",
            client_id=identity.principal,
            subject=identity.principal,
            scopes=list(identity.scopes),
            expires_at=identity.expires_at,
            claims={"iss": self._jwt.settings.issuer},
            principal_id=identity.principal,
            roles=identity.roles,
            kind="jwt",
        )

    async def _api_token(self, token: str) -> IdentityToken | None:
        key = _fingerprint(token)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.auth.token_cache_s:
            return cached[1]
        store = self._tokens()
        if store is None:
            return None
        record = await store.verify(token)
        if record is None:
            self._cache.pop(key, None)
            return None
        identity = IdentityToken(
            token=f"api:{record.id}",
            client_id=record.principal,
            subject=record.principal,
            # First-party credentials: the operator granted them when creating the token.
            scopes=list(self.auth.required_scopes),
            expires_at=None if record.expires_at is None else int(record.expires_at),
            claims={"iss": API_TOKEN_ISSUER, "token_id": record.id},
            principal_id=record.principal,
            roles=record.roles,
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (now, identity)
        return identity
