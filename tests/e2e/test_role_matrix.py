"""Each built-in role sees exactly the tools it may call, over stdio, HTTP and SSE, with API tokens
and with JWTs from a test issuer (RSA key made here, JWKS served on loopback) — and every way of
faking an identity fails (THREATS E R1, R4, R5; A P6).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import mcp_types as types
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.e2e.test_role_matrix_server import EXPECTED
from tests.support.servers import serve_http

pytestmark = pytest.mark.anyio

LAUNCHER = Path(__file__).with_name("test_role_matrix_server.py")
ROLES = sorted(EXPECTED)
ISSUER = "https://issuer.test"
AUDIENCE = "https://toolkiln.test/mcp"
KID = "test-key-1"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


# -- a test issuer -----------------------------------------------------------------------------


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    jwks_url: str = ""
    other_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    def token(self, subject: str, roles: list[str] | str, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 300}
        claims["roles"] = roles
        claims.update(overrides)
        key = claims.pop("_key", self.key)
        kid = claims.pop("_kid", KID)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    body = json.dumps({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Issuer(key=key, jwks_url=f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json")
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- servers -----------------------------------------------------------------------------------


def launcher(*args: str) -> list[str]:
    return [sys.executable, str(LAUNCHER), *args]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Path:
    path = tmp_path_factory.mktemp("role-matrix")
    (path / "toolkiln.toml").write_text(
        f"""
[auth]
api_tokens = true
# Every request asks the database, so a revocation is seen by the very next request.
token_cache_s = 0

[auth.jwt]
issuer = "{ISSUER}"
audience = ["{AUDIENCE}"]
jwks_url = "{issuer.jwks_url}"

# The matrix covers the fixture tools; the module management tools' admin-only grant is
# tested with the modules feature.
[modules]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launcher(*args, "--config", str(workdir / "toolkiln.toml")),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=workdir,
        check=False,
    )


@pytest.fixture(scope="module")
def api_tokens(workdir: Path) -> dict[str, str]:
    """One API token per built-in role, made with `toolkiln tokens create` like an operator would."""
    tokens = {}
    for role in ROLES:
        made = cli(workdir, "tokens", "create", "--principal", f"{role}-bot", "--roles", role)
        assert made.returncode == 0, made.stderr
        tokens[role] = made.stdout.strip()
    return tokens


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base: str
    path: str
    lines: list[str]

    @property
    def url(self) -> str:
        return self.base + self.path


@contextmanager
def serve(workdir: Path, transport: str, *extra: str) -> Iterator[Served]:
    config = ("--config", str(workdir / "toolkiln.toml"))
    with serve_http(*config, *extra, transport=transport, cwd=workdir, launcher=launcher()) as running:
        path = "/mcp" if transport == "http" else "/sse"
        yield Served(running.process, running.base, path, running.stderr_lines)


@pytest.fixture(scope="module")
def http_server(workdir: Path, api_tokens: dict[str, str]) -> Iterator[Served]:
    with serve(workdir, "http") as served:
        yield served


@pytest.fixture(scope="module")
def sse_server(workdir: Path, api_tokens: dict[str, str]) -> Iterator[Served]:
    with serve(workdir, "sse") as served:
        yield served


# -- the matrix --------------------------------------------------------------------------------


async def assert_sees_exactly(client: Client, role: str) -> None:
    listed = {tool.name for tool in (await client.list_tools()).tools}
    assert listed == EXPECTED[role]
    for name in sorted(EXPECTED["admin"]):
        if name in EXPECTED[role]:
            result = await client.call_tool(name, {})
            assert isinstance(result, types.CallToolResult)
            assert not result.is_error, (role, name, result)
        else:
            hidden = await call_error(client, name)
            missing = await call_error(client, "no.such.tool")
            assert hidden.code == missing.code
            assert hidden.message == missing.message.replace("no.such.tool", name)


async def call_error(client: Client, name: str) -> types.ErrorData:
    with pytest.raises(MCPError) as caught:
        await client.call_tool(name, {})
    return caught.value.error


@asynccontextmanager
async def bearer_client(
    url: str, token: str, *, mode: str = "auto", headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    # The SDK leaves a caller-provided HTTP client open; it is closed here.
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}", **(headers or {})}) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        yield client


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_sees_exactly_what_it_may_call_over_stdio(workdir: Path, role: str) -> None:
    command = launcher("serve", "--config", str(workdir / "toolkiln.toml"))
    params = StdioServerParameters(
        command=command[0], args=command[1:], cwd=workdir, env={"TOOLKILN_ROLES": role, "TOOLKILN_LOG_LEVEL": "error"}
    )
    async with Client(params) as client:
        await assert_sees_exactly(client, role)


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_sees_exactly_what_it_may_call_over_http_with_an_api_token(
    http_server: Served, api_tokens: dict[str, str], role: str
) -> None:
    async with bearer_client(http_server.url, api_tokens[role], mode="legacy") as client:
        await assert_sees_exactly(client, role)


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_sees_exactly_what_it_may_call_over_http_with_a_jwt(
    http_server: Served, issuer: Issuer, role: str
) -> None:
    async with bearer_client(http_server.url, issuer.token(f"{role}-user", [role])) as client:
        await assert_sees_exactly(client, role)


@pytest.mark.parametrize("role", ["readonly", "admin"])
async def test_the_legacy_sse_endpoint_applies_the_same_policy(  # THREATS R5
    sse_server: Served, api_tokens: dict[str, str], role: str
) -> None:
    transport = sse_client(sse_server.url, headers={"Authorization": f"Bearer {api_tokens[role]}"})
    async with Client(transport, mode="legacy") as client:  # type: ignore[arg-type]
        await assert_sees_exactly(client, role)


# -- identity ----------------------------------------------------------------------------------


async def whoami(client: Client) -> dict[str, Any]:
    result = await client.call_tool("whoami", {})
    assert isinstance(result, types.CallToolResult)
    assert result.structured_content is not None
    return result.structured_content


async def test_the_principal_comes_from_the_token_and_the_token_goes_no_further(  # THREATS C4
    http_server: Served, api_tokens: dict[str, str], issuer: Issuer
) -> None:
    async with bearer_client(http_server.url, api_tokens["agent"]) as client:
        me = await whoami(client)
    assert me == {"principal": "agent-bot", "roles": ["agent"], "transport": "http", "authorization_header_seen": False}
    async with bearer_client(http_server.url, issuer.token("carol", "readonly agent")) as client:
        me = await whoami(client)
    assert me["principal"] == "carol"
    assert me["roles"] == ["readonly", "agent"]
    assert not me["authorization_header_seen"]
    for token in api_tokens.values():
        assert all(token not in line for line in http_server.lines)


async def test_an_x_role_header_does_not_change_what_a_readonly_token_sees(  # THREATS R4
    http_server: Served, api_tokens: dict[str, str]
) -> None:
    spoof = {"X-Role": "admin", "X-Roles": "admin", "X-Principal": "admin-bot"}
    async with bearer_client(http_server.url, api_tokens["readonly"], headers=spoof) as client:
        await assert_sees_exactly(client, "readonly")
        assert (await whoami(client))["principal"] == "readonly-bot"


async def test_stdio_identity_is_the_local_profile_overridable_by_the_launching_host(workdir: Path) -> None:
    command = launcher("serve", "--config", str(workdir / "toolkiln.toml"))
    env = {"TOOLKILN_PRINCIPAL": "ide-agent", "TOOLKILN_ROLES": "agent", "TOOLKILN_LOG_LEVEL": "error"}
    async with Client(StdioServerParameters(command=command[0], args=command[1:], cwd=workdir, env=env)) as client:
        me = await whoami(client)
    assert me == {
        "principal": "ide-agent",
        "roles": ["agent"],
        "transport": "stdio",
        "authorization_header_seen": False,
    }


def hs256_signed_with_the_public_key(issuer: Issuer, claims: dict[str, Any]) -> str:
    """The algorithm-confusion token: HMAC keyed with the issuer's public key (PyJWT won't make one)."""
    secret = issuer.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    head = base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    body = base64url_encode(json.dumps(claims).encode())
    signature = base64url_encode(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return b".".join((head, body, signature)).decode()


def forged(issuer: Issuer) -> list[Any]:
    now = int(time.time())
    admin_claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "eve", "exp": now + 300, "roles": ["admin"]}
    head, _, signature = issuer.token("eve", ["readonly"]).split(".")
    boosted = base64url_encode(json.dumps(admin_claims).encode()).decode()
    return [
        pytest.param(None, id="no-token"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param("tkn_000000000000_" + "A" * 43, id="unknown-api-token"),
        pytest.param(jwt.encode(admin_claims, None, algorithm="none"), id="alg-none"),
        pytest.param(hs256_signed_with_the_public_key(issuer, admin_claims), id="hs256-with-public-key"),
        pytest.param(issuer.token("eve", ["admin"], aud="https://other.test/mcp"), id="other-audience"),
        pytest.param(issuer.token("eve", ["admin"], iss="https://evil.test"), id="other-issuer"),
        pytest.param(issuer.token("eve", ["admin"], exp=now - 3600), id="expired"),
        pytest.param(issuer.token("eve", ["admin"], _key=issuer.other_key), id="signed-by-another-key"),
        pytest.param(issuer.token("eve", ["admin"], _kid="unknown-kid"), id="unknown-kid"),
        pytest.param(f"{head}.{boosted}.{signature}", id="tampered-roles"),
        pytest.param(issuer.token("eve", ["admin"], sub=None), id="no-subject"),
    ]


def test_forged_missing_and_misdirected_credentials_get_401_with_resource_metadata(  # THREATS R4, P6
    http_server: Served, issuer: Issuer
) -> None:
    with httpx.Client(timeout=30) as http:
        for case in forged(issuer):
            token = case.values[0]
            headers = dict(MCP_HEADERS)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = http.post(http_server.url, headers=headers, json=INITIALIZE)
            assert response.status_code == 401, case.id
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer ")
            assert 'resource_metadata="https://toolkiln.test/.well-known/oauth-protected-resource/mcp"' in challenge


def test_a_token_in_the_query_string_is_not_read(http_server: Served, api_tokens: dict[str, str]) -> None:  # P6
    with httpx.Client(timeout=30) as http:
        for name in ("access_token", "token", "bearer"):
            url = f"{http_server.url}?{name}={api_tokens['admin']}"
            assert http.post(url, headers=MCP_HEADERS, json=INITIALIZE).status_code == 401


def test_protected_resource_metadata_names_the_issuer(http_server: Served) -> None:
    response = httpx.get(f"{http_server.base}/.well-known/oauth-protected-resource/mcp", timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["resource"] == AUDIENCE
    assert body["authorization_servers"] == [ISSUER]


def test_health_endpoints_stay_open_without_a_token(http_server: Served) -> None:
    assert httpx.get(f"{http_server.base}/healthz", timeout=30).status_code == 200


async def test_a_revoked_token_stops_working_mid_session(workdir: Path, http_server: Served) -> None:  # THREATS R4
    made = cli(workdir, "tokens", "create", "--principal", "temp-bot", "--roles", "agent", "--label", "short-lived")
    token = made.stdout.strip()
    token_id = token.split("_")[1]
    async with bearer_client(http_server.url, token, mode="legacy") as client:
        assert (await whoami(client))["principal"] == "temp-bot"
        revoked = cli(workdir, "tokens", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        # The transport reports the 401 on the next request as a failed response.
        with pytest.raises(MCPError, match="error response"):
            await client.call_tool("whoami", {})
    listed = cli(workdir, "tokens", "list")
    assert f"{token_id}  revoked" in listed.stdout


def test_a_session_cannot_be_replayed_with_another_principals_token(  # THREATS P6
    http_server: Served, api_tokens: dict[str, str]
) -> None:
    with httpx.Client(timeout=30) as http:
        opened = http.post(
            http_server.url,
            headers={**MCP_HEADERS, "Authorization": f"Bearer {api_tokens['readonly']}"},
            json=INITIALIZE,
        )
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]
        replay = {**MCP_HEADERS, "Authorization": f"Bearer {api_tokens['admin']}", "Mcp-Session-Id": session}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        assert http.post(http_server.url, headers=replay, json=listing).status_code == 404


def test_the_policy_explain_cli_names_the_deciding_rule(workdir: Path) -> None:
    allowed = cli(workdir, "policy", "explain", "--principal", "admin-bot", "--tool", "notes.delete")
    assert allowed.returncode == 0, allowed.stderr
    assert "rule 'builtin:admin-all'" in allowed.stdout
    denied = cli(workdir, "policy", "explain", "--principal", "agent-bot", "--tool", "notes.delete", "--json")
    assert denied.returncode == 1
    verdict = json.loads(denied.stdout)
    assert verdict["decision"] == "deny"
    assert verdict["rule"] == "default-deny"
    assert verdict["roles"] == ["agent"]


def test_serving_beyond_loopback_without_auth_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "toolkiln.toml").write_text("", encoding="utf-8")
    started = subprocess.run(
        launcher(
            "serve",
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--config",
            str(tmp_path / "toolkiln.toml"),
        ),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert started.returncode != 0
    assert "needs [auth]" in started.stderr
