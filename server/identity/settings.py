"""`[auth]` in toolkiln.toml: how HTTP and SSE callers prove who they are.

With neither API tokens nor JWT enabled, HTTP callers get the local profile (`[stdio]`), exactly
like a stdio client: that is for development on loopback only, and the server refuses to start
that way on any other address.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ASYMMETRIC_ALGORITHMS", "HttpAuthSettings", "JwtSettings"]

# Only public-key algorithms: a JWKS holds public keys, and accepting HS256 with a public key as
# the HMAC secret (or `none`) is the classic JWT confusion attack.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JwtSettings(_Frozen):
    """OAuth 2.1 resource-server mode: access tokens are JWTs signed by `issuer`."""

    issuer: str = Field(min_length=1)
    # The `aud` this server accepts (usually its own URL); a token for another audience is refused.
    audience: tuple[str, ...] = Field(min_length=1)
    jwks_url: str | None = None
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    principal_claim: str = "sub"
    # A list of role names, or one space-separated string.
    roles_claim: str = "roles"
    leeway_s: float = Field(default=30.0, ge=0, le=300)
    jwks_cache_s: float = Field(default=300.0, ge=0)
    # A token naming a key id we do not know refetches the JWKS at most this often.
    jwks_min_refresh_s: float = Field(default=30.0, ge=0)
    jwks_timeout_s: float = Field(default=5.0, gt=0, le=60)

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return (value,)
        return tuple(value) if isinstance(value, list) else value

    @field_validator("jwks_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        # Plain http only for a local issuer (development, tests): keys must not be MITM-able.
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")):
            return value
        raise ValueError("jwks_url must be https (plain http only on loopback)")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if name not in ASYMMETRIC_ALGORITHMS]
        if bad or not value:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ValueError(f"unsupported algorithm(s) {bad}; allowed: {allowed}")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> JwtSettings:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("set exactly one of jwks_url and jwks_file")
        return self


class HttpAuthSettings(_Frozen):
    # Bearer tokens made with `toolkiln tokens create`, stored hashed in the database.
    api_tokens: bool = False
    # How long a verified API token is trusted before the database is asked again; this bounds
    # how long a revoked token keeps working.
    token_cache_s: float = Field(default=5.0, ge=0, le=300)
    jwt: JwtSettings | None = None
    # The public URL of the MCP endpoint, advertised in the protected-resource metadata and in
    # `WWW-Authenticate`. Default: the first JWT audience if it is a URL, else the bind address.
    resource_url: str | None = None
    # Scopes every token must carry (403 `insufficient_scope` otherwise). API tokens carry them.
    required_scopes: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.api_tokens or self.jwt is not None
