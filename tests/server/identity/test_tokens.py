"""API tokens in real SQLite: hashed at rest, verified by id and hash, revocable, expiring."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.identity.settings import HttpAuthSettings
from server.identity.tokens import TokenStore
from server.identity.verifier import API_TOKEN_ISSUER, GatewayTokenVerifier, IdentityToken
from server.storage import Storage

pytestmark = pytest.mark.anyio


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    storage = await Storage.open(tmp_path / "toolkiln.db")
    try:
        yield storage
    finally:
        await storage.close()


async def test_only_a_hash_of_the_secret_is_stored(storage: Storage) -> None:
    plaintext, token = await TokenStore(storage.db).create("alice", ("agent",), label="laptop")
    raw = sqlite3.connect(storage.path).execute("SELECT * FROM api_tokens").fetchall()
    assert len(raw) == 1
    # The secret is url-safe base64 and may hold "_" itself: everything after the id is the secret.
    assert all(plaintext not in str(cell) and plaintext.split("_", 2)[2] not in str(cell) for cell in raw[0])
    assert token.id in plaintext


async def test_a_token_verifies_to_its_principal_and_roles(storage: Storage) -> None:
    store = TokenStore(storage.db)
    plaintext, _ = await store.create("alice", ("agent", "billing"))
    record = await store.verify(plaintext)
    assert record is not None
    assert (record.principal, record.roles) == ("alice", ("agent", "billing"))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="one-character-changed"),
        pytest.param(lambda t: t[:-1], id="truncated"),
        pytest.param(lambda t: t + "x", id="extended"),
        pytest.param(lambda t: t.upper(), id="upper-cased"),
        pytest.param(lambda t: "tkn_" + "0" * 12 + t[16:], id="other-id-same-secret"),
        pytest.param(lambda t: " " + t, id="leading-space"),
    ],
)
async def test_any_altered_token_is_refused(storage: Storage, mangle: object) -> None:
    store = TokenStore(storage.db)
    plaintext, _ = await store.create("alice", ("admin",))
    assert callable(mangle)
    assert await store.verify(mangle(plaintext)) is None


async def test_revoked_and_expired_tokens_are_refused(storage: Storage) -> None:
    store = TokenStore(storage.db)
    revoked, record = await store.create("alice", ("agent",))
    assert await store.revoke(record.id)
    assert not await store.revoke(record.id), "a second revoke reports nothing to do"
    assert await store.verify(revoked) is None
    expiring, made = await store.create("bob", ("agent",), expires_in_s=60)
    assert await store.verify(expiring, now=made.created_at + 59) is not None
    assert await store.verify(expiring, now=made.created_at + 61) is None
    assert await store.roles_of("alice") == ()


async def test_the_verifier_caches_for_the_configured_ttl_then_sees_a_revocation(storage: Storage) -> None:
    store = TokenStore(storage.db)
    plaintext, record = await store.create("alice", ("agent",))
    clock = [0.0]
    verifier = GatewayTokenVerifier(
        HttpAuthSettings(api_tokens=True, token_cache_s=5), tokens=lambda: store, clock=lambda: clock[0]
    )
    first = await verifier.verify_token(plaintext)
    assert isinstance(first, IdentityToken)
    assert (first.principal_id, first.roles, first.claims) == (
        "alice",
        ("agent",),
        {"iss": API_TOKEN_ISSUER, "token_id": record.id},
    )
    assert plaintext not in first.model_dump_json(), "the AccessToken never holds the secret"
    await store.revoke(record.id)
    clock[0] = 4.9
    assert await verifier.verify_token(plaintext) is not None
    clock[0] = 5.0
    assert await verifier.verify_token(plaintext) is None


async def test_api_tokens_are_refused_when_api_tokens_are_off(storage: Storage) -> None:
    store = TokenStore(storage.db)
    plaintext, _ = await store.create("alice", ("admin",))
    verifier = GatewayTokenVerifier(HttpAuthSettings(api_tokens=False), tokens=lambda: store)
    assert await verifier.verify_token(plaintext) is None
    assert await verifier.verify_token("x" * 10_000) is None
