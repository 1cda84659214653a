"""Upstream auth end to end: a real MCP client over Streamable HTTP (authenticated with API
tokens), a real toolkiln server, an OpenAPI source whose security schemes map to stored,
encrypted credentials, and a local upstream plus OAuth token endpoint on 127.0.0.1.

Every credential is the suite's canary (THREATS C1): the upstream must receive it exactly where
the scheme says, and nothing the client, the logs, the audit or the metrics see may hold it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
import structlog
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from credentials.vault import Vault
from server.config import ServerSettings, Settings
from server.identity.settings import HttpAuthSettings
from server.identity.tokens import TokenStore
from server.logs import configure_logging
from server.runtime import Runtime
from server.sources import install_sources
from tests.conftest import LeakWatch
from tests.credentials.conftest import CLIENT_ID, Api
from tests.e2e.inprocess import serve_in_process
from tools.openapi.auth_settings import AuthHandle
from tools.openapi.settings import OpenApiSourceSettings

pytestmark = pytest.mark.anyio

REDACTED = "[redacted]"


def spec(api: Api, elsewhere: Api) -> dict[str, Any]:
    def op(op_id: str, security: list[dict[str, list[str]]] | None, *params: dict[str, Any]) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "operationId": op_id,
            "parameters": list(params),
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {}}}}},
        }
        if security is not None:
            operation["security"] = security
        return {"get": operation}

    query = {"name": "api_key", "in": "query", "schema": {"type": "string"}}
    header = {"name": "X-API-Key", "in": "header", "schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "credential test API", "version": "1"},
        "components": {
            "securitySchemes": {
                "headerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "queryKey": {"type": "apiKey", "in": "query", "name": "api_key"},
                "cookieKey": {"type": "apiKey", "in": "cookie", "name": "session_key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "userKey": {"type": "apiKey", "in": "header", "name": "X-User-Key"},
                # Same origin as the API: the spec's token URL is trusted.
                "cc": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": f"{api.url}/oauth/token", "scopes": {}}},
                },
                # Another origin: only the token URL from the config is used.
                "refresh": {
                    "type": "oauth2",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": f"{elsewhere.url}/authorize",
                            "tokenUrl": f"{elsewhere.url}/oauth/token",
                            "scopes": {},
                        }
                    },
                },
            }
        },
        "paths": {
            "/echo/header": op("echoHeader", [{"headerKey": []}], header),
            "/echo/query": op("echoQuery", [{"queryKey": []}], query),
            "/echo/cookie": op("echoCookie", [{"cookieKey": []}]),
            "/echo/bearer": op("echoBearer", [{"bearer": []}]),
            "/echo/basic": op("echoBasic", [{"basic": []}]),
            "/echo/user": op("echoUser", [{"userKey": []}]),
            "/echo/open": op("echoOpen", []),
            "/protected/cc": op("ccProtected", [{"cc": []}]),
            "/protected/refresh": op("refreshProtected", [{"refresh": []}]),
            "/redirect": op(
                "redirectOut", [{"headerKey": []}], {"name": "to", "in": "query", "schema": {"type": "string"}}
            ),
        },
    }


def store_credentials(vault: Vault, api: Api, secret: str) -> None:
    origin = api.url
    vault.put("header-key", "", origin, "token", {}, {"value": secret})
    vault.put("query-key", "", origin, "token", {}, {"value": secret})
    vault.put("cookie-key", "", origin, "token", {}, {"value": secret})
    vault.put("bearer-token", "", origin, "token", {}, {"value": secret})
    vault.put("basic-login", "", origin, "basic", {"username": "svc"}, {"password": secret})
    vault.put("user-key", "alice", origin, "token", {}, {"value": f"{secret}-alice"})
    vault.put("user-key", "bob", origin, "token", {}, {"value": f"{secret}-bob"})
    vault.put("cc-client", "", origin, "oauth-client", {"client_id": CLIENT_ID}, {"client_secret": secret})
    vault.put(
        "refresh-grant", "", origin, "oauth-refresh", {"client_id": CLIENT_ID}, {"refresh_token": f"rt-0-{secret}"}
    )


@dataclass
class Gateway:
    url: str
    runtime: Runtime
    tokens: dict[str, str]
    logs: io.StringIO

    @asynccontextmanager
    async def client(self, principal: str = "alice") -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {self.tokens[principal]}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            Client(streamable_http_client(self.url, http_client=http)) as client,  # type: ignore[arg-type]
        ):
            yield client


@asynccontextmanager
async def gateway(tmp_path: Path, api: Api, elsewhere: Api, secret: str, watch: LeakWatch) -> AsyncIterator[Gateway]:
    spec_path = tmp_path / "api.json"
    spec_path.write_text(json.dumps(spec(api, elsewhere)))
    auth = {
        "headerKey": AuthHandle(credential="header-key"),
        "queryKey": AuthHandle(credential="query-key"),
        "cookieKey": AuthHandle(credential="cookie-key"),
        "bearer": AuthHandle(credential="bearer-token"),
        "basic": AuthHandle(credential="basic-login"),
        "userKey": AuthHandle(credential="user-key", per_principal=True),
        "cc": AuthHandle(credential="cc-client"),
        "refresh": AuthHandle(credential="refresh-grant", token_url=f"{api.url}/oauth/token"),
    }
    source = OpenApiSourceSettings(
        name="api", spec=str(spec_path), base_url=api.url, allow_private_hosts=("127.0.0.1",), auth=auth
    )
    settings = Settings(
        server=ServerSettings(data_dir=tmp_path / "data"), auth=HttpAuthSettings(api_tokens=True), sources=(source,)
    )
    vault = Vault.open(settings.credentials, settings.server.data_dir)
    store_credentials(vault, api, secret)
    vault.close()
    logs = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("debug", stream=logs)
    runtime = Runtime(settings)
    install_sources(runtime)
    try:
        async with serve_in_process(runtime) as url:
            assert runtime.storage is not None
            store = TokenStore(runtime.storage.db)
            tokens = {who: (await store.create(who, ("admin",)))[0] for who in ("alice", "bob")}
            yield Gateway(url, runtime, tokens, logs)
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tokens['alice']}"}) as http:
                metrics = await http.get(url.replace("/mcp", "/metrics"))
            # /metrics is guarded like the MCP endpoint; an admin token must really read it.
            assert metrics.status_code == 200, metrics.text
            assert "toolkiln_" in metrics.text
            watch.observe("metrics", metrics.text)
    finally:
        watch.observe("gateway log", logs.getvalue())
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.fixture
async def gw(tmp_path: Path, api: Api, elsewhere: Api, canary: str, leak_watch: LeakWatch) -> AsyncIterator[Gateway]:
    async with gateway(tmp_path, api, elsewhere, canary, leak_watch) as running:
        yield running


async def call(gw: Gateway, leak_watch: LeakWatch, name: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
    async with gw.client(**kw) as client:
        result = await client.call_tool(name, args or {})
    leak_watch.observe(f"result of {name}", result.model_dump(mode="json"))
    return result


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


@pytest.mark.parametrize(
    ("tool", "where"),
    [
        pytest.param("echoHeader", lambda seen, s: seen["headers"]["x-api-key"] == s, id="apikey-header"),
        pytest.param("echoQuery", lambda seen, s: seen["query"] == [["api_key", s]], id="apikey-query"),
        pytest.param("echoCookie", lambda seen, s: seen["cookies"] == {"session_key": s}, id="apikey-cookie"),
        pytest.param("echoBearer", lambda seen, s: seen["headers"]["authorization"] == f"Bearer {s}", id="bearer"),
        pytest.param(
            "echoBasic",
            lambda seen, s: (
                seen["headers"]["authorization"]
                == "Basic " + __import__("base64").b64encode(f"svc:{s}".encode()).decode()
            ),
            id="basic",
        ),
    ],
)
async def test_each_scheme_places_the_stored_credential_and_the_echo_comes_back_scrubbed(
    gw: Gateway, api: Api, canary: str, leak_watch: LeakWatch, tool: str, where: Any
) -> None:
    """THREATS S8: the upstream reflects every header; the model gets the reflection without the secret."""
    result = await call(gw, leak_watch, tool)
    assert not result.is_error, text_of(result)
    seen = api.state.last
    assert where(seen, canary)
    # The MCP client's own bearer token is not forwarded upstream (THREATS C4, P6).
    assert not any(token in json.dumps(seen) for token in gw.tokens.values())
    dumped = json.dumps(result.model_dump(mode="json"))
    assert canary not in dumped
    assert REDACTED in dumped


async def test_tools_list_and_an_open_operation_carry_no_credential(
    gw: Gateway, api: Api, canary: str, leak_watch: LeakWatch
) -> None:
    async with gw.client() as client:
        listed = await client.list_tools()
    leak_watch.observe("tools/list", listed.model_dump(mode="json"))
    assert canary not in json.dumps(listed.model_dump(mode="json"))
    result = await call(gw, leak_watch, "echoOpen")
    assert not result.is_error
    seen = api.state.last
    assert "x-api-key" not in seen["headers"]
    assert "authorization" not in seen["headers"]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        pytest.param("echoHeader", {"X-API-Key": "attacker"}, id="header-named-like-the-key"),
        pytest.param("echoQuery", {"api_key": "attacker"}, id="query-named-like-the-key"),
    ],
)
async def test_an_argument_that_would_set_the_injected_credential_is_refused(
    gw: Gateway, api: Api, leak_watch: LeakWatch, tool: str, args: dict[str, Any]
) -> None:
    """THREATS A4: refused before anything is sent."""
    async with gw.client() as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        arg = next(iter(listed[tool].input_schema["properties"]))
        result = await client.call_tool(tool, {arg: next(iter(args.values()))})
    leak_watch.observe("refusal", result.model_dump(mode="json"))
    assert result.is_error
    assert "the server sets it" in text_of(result)
    assert api.state.requests == []


async def test_each_principal_gets_its_own_key_and_one_without_gets_credential_unavailable(
    gw: Gateway, api: Api, canary: str, leak_watch: LeakWatch
) -> None:
    assert not (await call(gw, leak_watch, "echoUser", principal="alice")).is_error
    assert api.state.last["headers"]["x-user-key"] == f"{canary}-alice"
    assert not (await call(gw, leak_watch, "echoUser", principal="bob")).is_error
    assert api.state.last["headers"]["x-user-key"] == f"{canary}-bob"
    gw.runtime.credentials.store(create=False).delete("user-key", "bob")  # type: ignore[union-attr]
    result = await call(gw, leak_watch, "echoUser", principal="bob")
    assert result.is_error
    assert text_of(result) == "credential unavailable: 'user-key' is not stored for principal 'bob'"
    assert len(api.state.requests) == 2


async def test_a_redirect_to_another_origin_is_not_followed_and_carries_no_credential(
    gw: Gateway, api: Api, elsewhere: Api, canary: str, leak_watch: LeakWatch
) -> None:
    """THREATS S4: redirects are off by default; the one request made went to the source's origin."""
    result = await call(gw, leak_watch, "redirectOut", {"to": f"{elsewhere.url}/steal"})
    assert result.is_error
    assert "redirect not followed" in text_of(result)
    assert elsewhere.state.requests == []
    assert api.state.last["headers"]["x-api-key"] == canary


async def test_client_credentials_token_is_fetched_once_cached_and_refetched_after_a_401(
    gw: Gateway, api: Api, canary: str, leak_watch: LeakWatch
) -> None:
    first = await call(gw, leak_watch, "ccProtected")
    second = await call(gw, leak_watch, "ccProtected")
    assert not first.is_error
    assert not second.is_error
    assert [r["grant_type"] for r in api.state.token_requests] == ["client_credentials"]
    api.state.revoke_access_tokens()
    third = await call(gw, leak_watch, "ccProtected")
    assert not third.is_error, text_of(third)
    assert [r["grant_type"] for r in api.state.token_requests] == ["client_credentials"] * 2
    statuses = [r["headers"]["authorization"] for r in api.state.requests]
    assert statuses[0] == statuses[1] != statuses[3]
    assert len(api.state.requests) == 4  # the refused attempt and its one retry


async def test_a_401_after_a_fresh_token_is_an_error_with_the_echoed_token_scrubbed(
    gw: Gateway, api: Api, canary: str, leak_watch: LeakWatch
) -> None:
    """The retry happens once; the upstream's 401 body quotes the token, the client never sees it."""
    api.state.refuse_all = True
    result = await call(gw, leak_watch, "ccProtected")
    assert result.is_error
    assert text_of(result).startswith("Upstream returned HTTP 401")
    assert canary not in text_of(result)
    assert REDACTED in text_of(result)
    assert len(api.state.token_requests) == 2
    assert len(api.state.requests) == 2


async def test_refresh_token_grant_stores_the_rotated_refresh_token_back_encrypted(
    gw: Gateway, api: Api, canary: str, leak_watch: LeakWatch
) -> None:
    assert not (await call(gw, leak_watch, "refreshProtected")).is_error
    assert api.state.token_requests[-1]["refresh_token"] == f"rt-0-{canary}"
    rotated = next(iter(api.state.refresh_tokens))
    assert rotated != f"rt-0-{canary}"
    vault = gw.runtime.credentials
    stored = vault.lookup("refresh-grant", "", api.url)
    assert stored.secret("refresh_token").reveal() == rotated
    row = vault.store(create=False).find("refresh-grant", "")  # type: ignore[union-attr]
    assert row is not None
    assert rotated.encode() not in row.ciphertext
    api.state.revoke_access_tokens()
    assert not (await call(gw, leak_watch, "refreshProtected")).is_error
    assert api.state.token_requests[-1]["refresh_token"] == rotated
