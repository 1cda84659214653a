"""OAuth 2.1 resource-server mode: validating JWT access tokens against the issuer's JWKS.

Every check is explicit: the algorithm must be one configured public-key algorithm (so `none`,
unsigned tokens and HS256-with-a-public-key are refused before any key is looked at), the
signature must verify with the JWKS key named by `kid`, and `iss`, `aud` and `exp` are required
and checked (with a small leeway). Roles come only from the signed claims, never from headers.

The JWKS is fetched with httpx (no redirects, a size cap, a timeout) and cached; a token naming
an unknown key id triggers at most one refetch per `jwks_min_refresh_s`, so garbage tokens cannot
make us hammer the issuer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import structlog

from server.identity.settings import JwtSettings

__all__ = ["JwksError", "JwtIdentity", "JwtVerifier"]

log = structlog.get_logger("toolkiln.auth")
_MAX_JWKS_BYTES = 256 * 1024


class JwksError(Exception):
    """The key set could not be fetched or parsed."""


class JwtIdentity:
    """What a valid token says: who, with which roles and scopes, until when."""

    __slots__ = ("claims", "expires_at", "principal", "roles", "scopes")

    def __init__(
        self, principal: str, roles: tuple[str, ...], scopes: tuple[str, ...], expires_at: int, claims: dict[str, Any]
    ) -> None:
        self.principal = principal
        self.roles = roles
        self.scopes = scopes
        self.expires_at = expires_at
        self.claims = claims


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part for part in value.split() if part)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


class JwtVerifier:
    """Verifies one token at a time; holds the cached key set."""

    def __init__(
        self, settings: JwtSettings, *, base_dir: Path | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._file = None
        if settings.jwks_file is not None:
            self._file = settings.jwks_file if base_dir is None else base_dir / settings.jwks_file
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()

    async def verify(self, token: str) -> JwtIdentity | None:
        """The identity in `token`, or None if anything about it is wrong (logged, never raised)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.settings.algorithms:
            log.info("jwt_rejected", reason="algorithm not allowed", alg=str(algorithm)[:16])
            return None
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        if key is None:
            log.info("jwt_rejected", reason="unknown key id")
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=list(self.settings.audience),
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud", self.settings.principal_claim]},
            )
        except jwt.PyJWTError as exc:
            log.info("jwt_rejected", reason=type(exc).__name__)
            return None
        principal = claims.get(self.settings.principal_claim)
        if not isinstance(principal, str) or not principal:
            return None
        scopes = _strings(claims.get("scope")) or _strings(claims.get("scp"))
        roles = _strings(claims.get(self.settings.roles_claim))
        return JwtIdentity(principal, roles, scopes, int(claims["exp"]), claims)

    async def _key(self, kid: str | None) -> jwt.PyJWK | None:
        now = self._clock()
        age = None if self._fetched_at is None else now - self._fetched_at
        stale = age is None or age >= self.settings.jwks_cache_s
        unknown = age is not None and age >= self.settings.jwks_min_refresh_s and self._lookup(kid) is None
        if stale or unknown:
            await self._refresh()
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        # A token without `kid` is usable only against a single-key set.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self) -> None:
        async with self._lock:
            fetched_at = self._clock()
            try:
                document = await self._load()
                keys = jwt.PyJWKSet.from_dict(document)
            except (JwksError, jwt.PyJWTError, ValueError) as exc:
                # Keep the keys we had: an issuer hiccup must not lock every caller out at once.
                log.warning("jwks_unavailable", error=str(exc)[:200])
                self._fetched_at = fetched_at
                return
            self._keys = {key.key_id: key for key in keys.keys}
            self._fetched_at = fetched_at

    async def _load(self) -> dict[str, Any]:
        if self._file is not None:
            raw = await anyio.Path(self._file).read_bytes()
        else:
            assert self.settings.jwks_url is not None
            raw = await self._fetch(self.settings.jwks_url)
        if len(raw) > _MAX_JWKS_BYTES:
            raise JwksError("key set too large")
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise JwksError("key set is not a JSON object")
        return document

    async def _fetch(self, url: str) -> bytes:
        timeout = httpx.Timeout(self.settings.jwks_timeout_s)
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise JwksError(f"HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > _MAX_JWKS_BYTES:
                        raise JwksError("key set too large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise JwksError(f"{type(exc).__name__}: {exc}") from None
