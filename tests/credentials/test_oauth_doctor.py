"""OAuth token lifetimes against the local token endpoint (a controlled clock, no sleeps), the
trust rule for token URLs, the canary scanner itself, and `toolkiln doctor`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest

from credentials.errors import CredentialUnavailable
from credentials.oauth import TokenEndpoint, TokenSource
from credentials.settings import CredentialSettings
from credentials.vault import Vault
from tests.conftest import find_leaks
from tests.credentials.conftest import CLIENT_ID, Api
from tests.support.servers import toolkiln_command
from tools.openapi.auth import resolve_schemes
from tools.openapi.auth_settings import AuthHandle

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_token_is_reused_until_shortly_before_expiry_then_fetched_again(
    tmp_path: Path, api: Api, canary: str
) -> None:
    api.state.expires_in = 120
    vault = Vault.open(CredentialSettings(), tmp_path)
    vault.put("cc", "", api.url, "oauth-client", {"client_id": CLIENT_ID}, {"client_secret": canary})
    credential = vault.lookup("cc", "", api.url)
    clock = Clock()
    tokens = TokenSource(vault, allow_private_hosts=["127.0.0.1"], clock=clock)
    endpoint = TokenEndpoint(f"{api.url}/oauth/token", scopes=("read",))
    try:
        first = await tokens.token(credential, endpoint)
        clock.now += 89  # 120 s lifetime, renewed 30 s early
        assert await tokens.token(credential, endpoint) is first
        clock.now += 2
        renewed = await tokens.token(credential, endpoint)
    finally:
        await tokens.aclose()
        vault.close()
    assert renewed.token != first.token
    assert [r["scope"] for r in api.state.token_requests] == ["read", "read"]


async def test_concurrent_calls_share_one_token_request(tmp_path: Path, api: Api, canary: str) -> None:
    vault = Vault.open(CredentialSettings(), tmp_path)
    vault.put("cc", "", api.url, "oauth-client", {"client_id": CLIENT_ID}, {"client_secret": canary})
    credential = vault.lookup("cc", "", api.url)
    tokens = TokenSource(vault, allow_private_hosts=["127.0.0.1"])
    got = []

    async def one() -> None:
        got.append(await tokens.token(credential, TokenEndpoint(f"{api.url}/oauth/token")))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
    finally:
        await tokens.aclose()
        vault.close()
    assert len(api.state.token_requests) == 1
    assert len({id(token) for token in got}) == 1


async def test_a_refused_client_gets_the_error_code_but_never_the_secret(tmp_path: Path, api: Api, canary: str) -> None:
    vault = Vault.open(CredentialSettings(), tmp_path)
    vault.put("cc", "", api.url, "oauth-client", {"client_id": "someone-else"}, {"client_secret": canary})
    tokens = TokenSource(vault, allow_private_hosts=["127.0.0.1"])
    try:
        with pytest.raises(CredentialUnavailable) as caught:
            await tokens.token(vault.lookup("cc", "", api.url), TokenEndpoint(f"{api.url}/oauth/token"))
    finally:
        await tokens.aclose()
        vault.close()
    assert caught.value.message == "credential unavailable: 'cc' token endpoint answered HTTP 401 (invalid_client)"


async def test_the_token_endpoint_is_behind_the_egress_guard(tmp_path: Path, api: Api, canary: str) -> None:
    vault = Vault.open(CredentialSettings(), tmp_path)
    vault.put("cc", "", api.url, "oauth-client", {"client_id": CLIENT_ID}, {"client_secret": canary})
    tokens = TokenSource(vault)  # loopback not allowlisted
    try:
        with pytest.raises(CredentialUnavailable, match="token endpoint refused"):
            await tokens.token(vault.lookup("cc", "", api.url), TokenEndpoint(f"{api.url}/oauth/token"))
    finally:
        await tokens.aclose()
        vault.close()
    assert api.state.token_requests == []


@pytest.mark.parametrize(
    ("spec_url", "config_url", "trusted"),
    [
        pytest.param(
            "https://api.example.com/oauth/token", None, "https://api.example.com/oauth/token", id="spec-same-origin"
        ),
        pytest.param("https://evil.example/token", None, None, id="spec-other-origin-refused"),
        pytest.param(
            "https://evil.example/token", "https://login.example.com/t", "https://login.example.com/t", id="config-wins"
        ),
    ],
)
def test_only_a_configured_or_same_origin_token_url_receives_the_client_secret(
    spec_url: str, config_url: str | None, trusted: str | None
) -> None:
    spec = {"oauth": {"type": "oauth2", "client_credentials": spec_url}}
    uses = resolve_schemes(
        "s", {"oauth": AuthHandle(credential="c", token_url=config_url)}, spec, "https://api.example.com"
    )
    assert uses["oauth"].token_url == trusted
    assert uses["oauth"].spec_token_url_refused is (trusted is None)


def test_the_scanner_finds_a_secret_raw_url_encoded_and_inside_base64() -> None:
    secret = "planted-value/+x"
    for shift in range(3):
        packed = base64.b64encode(b"u" * shift + b":" + secret.encode() + b"!").decode()
        assert find_leaks(secret, [("b64", f"Authorization: Basic {packed}")]) == ["b64"]
    assert find_leaks(secret, [("url", "q=planted-value%2F%2Bx")]) == ["url"]
    assert find_leaks(secret, [("clean", "planted-valu e")]) == []


def test_doctor_names_what_is_missing_and_passes_once_it_is_there(tmp_path: Path, api: Api, canary: str) -> None:
    spec = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}}},
        "security": [{"key": []}],
        "paths": {"/echo/x": {"get": {"operationId": "x", "responses": {"200": {"description": "ok"}}}}},
    }
    (tmp_path / "api.json").write_text(json.dumps(spec))
    (tmp_path / "toolkiln.toml").write_text(
        f'[[sources]]\nspec = "api.json"\nbase_url = "{api.url}"\nallow_private_hosts = ["127.0.0.1"]\n'
        '[sources.auth.key]\ncredential = "api-key"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")}

    def doctor() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            toolkiln_command("doctor"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    before = doctor()
    assert before.returncode == 1
    assert "MISSING  credential key: none yet" in before.stdout
    assert "MISSING  source api: scheme key → credential api-key: not stored" in before.stdout
    assert f"ok       source api: upstream {api.url} answers (HTTP 200)" in before.stdout
    Vault.open(CredentialSettings(), tmp_path / ".toolkiln").put("api-key", "", api.url, "token", {}, {"value": canary})
    after = doctor()
    assert after.returncode == 0, after.stdout
    assert "ok       source api: scheme key → credential api-key (token)" in after.stdout
    assert canary not in after.stdout + after.stderr
