"""JWT access tokens: signature, algorithm, issuer, audience and expiry checks; the key cache."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from server.identity.jwt import JwtVerifier
from server.identity.settings import JwtSettings

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.test"
AUDIENCE = "https://toolkiln.test/mcp"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwks(*entries: tuple[Any, str, str]) -> dict[str, Any]:
    keys = []
    for key, kid, alg in entries:
        algorithm = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
        keys.append({**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": alg})
    return {"keys": keys}


def token(key: Any = RSA_KEY, *, kid: str | None = "r1", alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 60, "roles": ["agent"]}
    body.update(claims)
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg, headers=headers)


class KeyServer:
    """A loopback JWKS endpoint that counts fetches."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer(jwks((RSA_KEY, "r1", "RS256")))
    try:
        yield server
    finally:
        server.close()


def settings(**overrides: Any) -> JwtSettings:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "http://127.0.0.1:9/none"}
    values.update(overrides)
    return JwtSettings.model_validate(values)


async def test_a_valid_token_gives_principal_roles_and_scopes(key_server: KeyServer) -> None:
    verifier = JwtVerifier(settings(jwks_url=key_server.url))
    identity = await verifier.verify(token(scope="tools:read tools:call", roles="readonly agent"))
    assert identity is not None
    assert (identity.principal, identity.roles, identity.scopes) == (
        "alice",
        ("readonly", "agent"),
        ("tools:read", "tools:call"),
    )


async def test_ec_keys_and_a_custom_principal_claim_work_from_a_jwks_file(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps(jwks((EC_KEY, "e1", "ES256"))), encoding="utf-8")
    verifier = JwtVerifier(
        settings(jwks_url=None, jwks_file="jwks.json", principal_claim="email", roles_claim="groups"),
        base_dir=tmp_path,
    )
    identity = await verifier.verify(token(EC_KEY, kid="e1", alg="ES256", email="a@example.test", groups=["developer"]))
    assert identity is not None
    assert (identity.principal, identity.roles) == ("a@example.test", ("developer",))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "https://other.test/mcp"}, id="other-audience"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"iss": "https://evil.test"}, id="other-issuer"),
        pytest.param({"exp": int(time.time()) - 120}, id="expired-beyond-leeway"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"nbf": int(time.time()) + 3600}, id="not-yet-valid"),
        pytest.param({"sub": None}, id="no-subject"),
        pytest.param({"sub": 42}, id="numeric-subject"),
    ],
)
async def test_claims_that_do_not_fit_are_refused(key_server: KeyServer, claims: dict[str, Any]) -> None:
    verifier = JwtVerifier(settings(jwks_url=key_server.url, leeway_s=30))
    assert await verifier.verify(token(**claims)) is None


async def test_an_unlisted_algorithm_is_refused_before_any_key_is_fetched(key_server: KeyServer) -> None:
    verifier = JwtVerifier(settings(jwks_url=key_server.url, algorithms=["ES256"]))
    assert await verifier.verify(token()) is None
    assert await verifier.verify(jwt.encode({"sub": "eve"}, None, algorithm="none")) is None
    assert key_server.fetches == 0


async def test_unknown_key_ids_refetch_the_key_set_at_most_once_per_interval(key_server: KeyServer) -> None:
    clock = [0.0]
    verifier = JwtVerifier(
        settings(jwks_url=key_server.url, jwks_min_refresh_s=30, jwks_cache_s=300), clock=lambda: clock[0]
    )
    assert await verifier.verify(token()) is not None
    assert key_server.fetches == 1
    for _ in range(20):
        assert await verifier.verify(token(kid="rotated")) is None
    assert key_server.fetches == 1, "garbage kids must not hammer the issuer"
    key_server.document = jwks((RSA_KEY, "r1", "RS256"), (RSA_KEY, "rotated", "RS256"))
    clock[0] = 31
    assert await verifier.verify(token(kid="rotated")) is not None
    assert key_server.fetches == 2


async def test_an_unreachable_issuer_keeps_the_keys_already_known(key_server: KeyServer) -> None:
    clock = [0.0]
    verifier = JwtVerifier(settings(jwks_url=key_server.url, jwks_cache_s=10), clock=lambda: clock[0])
    assert await verifier.verify(token()) is not None
    key_server.close()
    clock[0] = 11
    assert await verifier.verify(token()) is not None


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"algorithms": ["HS256"]}, id="symmetric-algorithm"),
        pytest.param({"algorithms": ["none"]}, id="alg-none"),
        pytest.param({"algorithms": []}, id="no-algorithm"),
        pytest.param({"jwks_url": "http://issuer.example/jwks.json"}, id="plain-http-off-loopback"),
        pytest.param({"jwks_url": "file:///etc/passwd"}, id="file-url"),
        pytest.param({"jwks_url": None}, id="no-key-source"),
        pytest.param({"jwks_file": "k.json"}, id="two-key-sources"),
        pytest.param({"audience": []}, id="no-audience"),
    ],
)
def test_unsafe_jwt_settings_are_config_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**overrides)
