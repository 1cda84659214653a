"""The authentication wrapper around the MCP paths, driven in-process through ASGI."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import Receive, Scope, Send

from server.config import Settings
from server.identity.http import protect
from server.identity.principal import ANONYMOUS, PrincipalResolver
from server.identity.tokens import TokenStore
from server.runtime import Runtime
from server.storage import Storage
from tools.errors import ConfigError

pytestmark = pytest.mark.anyio


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    """Reports what the protected app would see: the user and the headers."""
    user = scope.get("user")
    body = json.dumps(
        {
            "user": user.access_token.client_id if isinstance(user, AuthenticatedUser) else None,
            "headers": sorted(name.decode() for name, _ in scope["headers"]),
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def runtime_with(tmp_path: Path, **auth: Any) -> Runtime:
    data = {"server": {"data_dir": str(tmp_path)}, "auth": auth}
    return Runtime(Settings.model_validate(data))


@pytest.fixture
async def scoped(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    runtime = runtime_with(tmp_path, api_tokens=True, required_scopes=["mcp:tools"])
    runtime.storage = await Storage.open(tmp_path / "toolkiln.db")
    token, _ = await TokenStore(runtime.storage.db).create("alice", ("agent",))
    app = protect(inner, runtime, paths=("/mcp",))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            yield client, token
    finally:
        await runtime.storage.close()


async def test_a_verified_token_reaches_the_app_without_its_authorization_header(
    scoped: tuple[httpx.AsyncClient, str],
) -> None:
    client, token = scoped
    response = await client.post("/mcp", headers={"Authorization": f"Bearer {token}", "X-Role": "admin"})
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert "authorization" not in response.json()["headers"]


async def test_missing_credentials_get_401_with_a_bearer_challenge(scoped: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = scoped
    response = await client.post("/mcp")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_only_the_mcp_paths_are_guarded(scoped: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = scoped
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.post("/mcp/")).status_code == 401
    assert (await client.post("/mcpx")).status_code == 200


async def test_a_jwt_without_a_required_scope_gets_403_insufficient_scope(tmp_path: Path) -> None:  # P6
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k", "alg": "RS256"}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
    jwt_settings = {"issuer": "https://issuer.test", "audience": "https://t.test/mcp", "jwks_file": "jwks.json"}
    settings = Settings.model_validate({"auth": {"jwt": jwt_settings, "required_scopes": ["mcp:tools"]}})
    runtime = Runtime(settings.model_copy(update={"source_path": tmp_path / "toolkiln.toml"}))
    app = protect(inner, runtime, paths=("/mcp",))
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "https://t.test/mcp", "sub": "carol", "exp": now + 60}
    narrow = jwt.encode({**claims, "scope": "mcp:read"}, key, algorithm="RS256", headers={"kid": "k"})
    wide = jwt.encode({**claims, "scope": "mcp:read mcp:tools"}, key, algorithm="RS256", headers={"kid": "k"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        refused = await client.post("/mcp", headers={"Authorization": f"Bearer {narrow}"})
        allowed = await client.post("/mcp", headers={"Authorization": f"Bearer {wide}"})
    assert refused.status_code == 403
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "resource_metadata=" in challenge
    assert allowed.status_code == 200
    assert allowed.json()["user"] == "carol"


def test_serving_beyond_loopback_without_auth_is_a_config_error(tmp_path: Path) -> None:
    runtime = Runtime(Settings.model_validate({"http": {"host": "0.0.0.0"}}))
    with pytest.raises(ConfigError, match="needs \\[auth\\]"):
        protect(inner, runtime, paths=("/mcp",))
    loopback = Runtime(Settings())
    assert protect(inner, loopback, paths=("/mcp",)) is inner


def test_the_principal_resolver_never_reads_roles_from_the_request() -> None:
    class FakeRequest:
        def __init__(self) -> None:
            self.scope: dict[str, Any] = {"headers": [(b"x-role", b"admin")], "user": None}

    open_http = PrincipalResolver(Settings(), environ={})
    assert open_http.of_request(FakeRequest()).roles == ("admin",), "no [auth]: the local profile"
    authenticated = PrincipalResolver(Settings.model_validate({"auth": {"api_tokens": True}}), environ={})
    anonymous = authenticated.of_request(FakeRequest())
    assert (anonymous.id, anonymous.roles) == (ANONYMOUS, ())
    assert authenticated.of_request(None).id == "local"


def test_the_launching_host_can_override_the_local_profile() -> None:
    resolver = PrincipalResolver(Settings(), environ={"TOOLKILN_PRINCIPAL": "ide", "TOOLKILN_ROLES": "agent, readonly"})
    assert (resolver.local("stdio").id, resolver.local("stdio").roles) == ("ide", ("agent", "readonly"))
    nobody = PrincipalResolver(Settings(), environ={"TOOLKILN_ROLES": ""})
    assert nobody.local("stdio").roles == ()
