"""Authentication in front of the HTTP and SSE endpoints, built from the SDK's own pieces.

    AuthenticationMiddleware(BearerAuthBackend(GatewayTokenVerifier))   reads `Authorization`
      └ AuthContextMiddleware                                           SDK auth context var
          ├ MCP paths → RequireAuthMiddleware → strip `Authorization` → MCP app
          ├ /.well-known/oauth-protected-resource… → RFC 9728 metadata (JWT mode)
          └ anything else (health) → app, unauthenticated

No token, a bad one, an expired one, one for another audience: 401 with `WWW-Authenticate`
(naming the resource metadata in JWT mode). A token only in the query string is not read. A
token lacking a required scope: 403 `insufficient_scope`. The SDK binds each session to the
principal that opened it.

The SDK's `streamable_http_app(auth=…)` wires the same middleware but cannot strip the header
and does not cover the SSE transport, so both transports are wrapped here instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from pydantic import ValidationError
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

from server.identity.jwt import JwtVerifier
from server.identity.tokens import TokenStore
from server.identity.verifier import GatewayTokenVerifier
from tools.errors import ConfigError

if TYPE_CHECKING:
    from server.runtime import Runtime

__all__ = ["protect", "sdk_auth_settings"]

log = structlog.get_logger("toolkiln.auth")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _config_name(runtime: Runtime) -> str:
    return str(runtime.settings.source_path or "toolkiln.toml")


def sdk_auth_settings(runtime: Runtime) -> AuthSettings:
    """The SDK's view of `[auth]`: issuer, resource URL and required scopes.

    Raises:
        ConfigError: the issuer or resource URL is not an http(s) URL.
    """
    settings = runtime.settings
    auth, http = settings.auth, settings.http
    resource = auth.resource_url
    if resource is None and auth.jwt is not None and auth.jwt.audience[0].startswith(("https://", "http://")):
        resource = auth.jwt.audience[0]
    if resource is None:
        resource = f"http://{http.host}:{http.port}{http.path}"
    issuer = auth.jwt.issuer if auth.jwt is not None else resource
    try:
        # Validated from strings so that a path-less issuer keeps its exact spelling (no "/").
        return AuthSettings.model_validate(
            {
                "issuer_url": issuer,
                "resource_server_url": resource,
                "required_scopes": list(auth.required_scopes) or None,
                # Our verifier checks `aud` itself (the JWT library does, against `auth.jwt.audience`).
                "validate_token_resource": False,
            }
        )
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise ConfigError(_config_name(runtime), f"not an http(s) URL ({problem})", key="auth") from None


class _Dispatch:
    def __init__(self, app: ASGIApp, protected: ASGIApp, paths: tuple[str, ...], metadata: Router | None) -> None:
        self.app = app
        self.protected = protected
        self.paths = paths
        self.metadata = metadata
        self.metadata_paths = tuple(str(route.path) for route in metadata.routes) if metadata else ()  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths):
                await self.protected(scope, receive, send)
                return
            if self.metadata is not None and path in self.metadata_paths:
                await self.metadata(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _StripCredentials:
    """Drops `Authorization` once it has been verified, so no later code can forward it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"authorization"]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def protect(app: ASGIApp, runtime: Runtime, *, paths: tuple[str, ...]) -> ASGIApp:
    """Wrap an HTTP or SSE app so `paths` need a valid bearer token (when `[auth]` is on).

    Raises:
        ConfigError: no authentication is configured but the bind address is not loopback.
    """
    settings = runtime.settings
    auth = settings.auth
    if not auth.enabled:
        if settings.http.host not in _LOOPBACK:
            raise ConfigError(
                _config_name(runtime),
                f"serving on {settings.http.host} needs [auth] (api_tokens or jwt); "
                "without it every caller gets the local profile",
                key="auth",
            )
        return app
    sdk = sdk_auth_settings(runtime)
    jwt = None
    if auth.jwt is not None:
        base = settings.source_path.parent if settings.source_path is not None else None
        jwt = JwtVerifier(auth.jwt, base_dir=base)

    def tokens() -> TokenStore | None:
        return None if runtime.storage is None else TokenStore(runtime.storage.db)

    verifier = GatewayTokenVerifier(auth, tokens=tokens, jwt=jwt)
    metadata_url = build_resource_metadata_url(sdk.resource_server_url) if jwt is not None else None  # type: ignore[arg-type]
    required = list(auth.required_scopes)
    protected = RequireAuthMiddleware(_StripCredentials(app), required, metadata_url)
    metadata = None
    if jwt is not None:
        assert sdk.resource_server_url is not None
        metadata = Router(
            routes=create_protected_resource_routes(
                resource_url=sdk.resource_server_url,
                authorization_servers=[sdk.issuer_url],
                scopes_supported=required or None,
                resource_name=settings.server.name,
            )
        )
    log.info("http_auth", api_tokens=auth.api_tokens, jwt=jwt is not None, scopes=required)
    inner = AuthContextMiddleware(_Dispatch(app, protected, paths, metadata))
    return AuthenticationMiddleware(inner, backend=BearerAuthBackend(verifier))
