"""The encrypted store: masked values, envelope binding, wrong or missing keys (THREATS C2, C4)."""

from __future__ import annotations

import copy
import json
import os
import pickle
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from credentials.errors import CredentialKeyMissing, CredentialSetupError, CredentialUnavailable
from credentials.masked import MASK, Secret
from credentials.settings import ENV_KEY, CredentialSettings
from credentials.vault import Vault
from server.config import ServerSettings, Settings
from server.runtime import Runtime
from tests.conftest import LeakWatch
from tests.credentials.conftest import Api
from tests.credentials.test_upstream_auth import call, gateway, text_of
from tests.support.servers import toolkiln_command

ORIGIN_A = "https://a.example.com"
ORIGIN_B = "https://b.example.com"


def vault_in(tmp_path: Path) -> Vault:
    return Vault.open(CredentialSettings(), tmp_path)


def test_a_secret_never_shows_its_value(canary: str, leak_watch: LeakWatch) -> None:
    secret = Secret(canary)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr({"k": [secret]})]
    leak_watch.observe("secret reprs", shown)
    assert all(canary not in text for text in shown)
    assert MASK in str(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        copy.copy(secret)
    assert secret == Secret(canary)
    assert secret.reveal() == canary


def test_a_stored_credential_is_encrypted_and_listed_without_its_value(tmp_path: Path, canary: str) -> None:
    vault = vault_in(tmp_path)
    vault.put("key", "", ORIGIN_A, "token", {}, {"value": canary})
    vault.close()
    assert canary.encode() not in (tmp_path / "credentials.db").read_bytes()
    assert (tmp_path / "credentials.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "credentials.db").stat().st_mode & 0o777 == 0o600
    found = vault_in(tmp_path).lookup("key", "", ORIGIN_A)
    assert found.secret("value").reveal() == canary
    assert canary not in repr(found)


def _swap(db: Path, column: str, value: object, name: str, owner: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE credentials SET {column} = ? WHERE name = ? AND owner = ?", (value, name, owner))


def test_a_ciphertext_moved_to_another_tenants_row_is_refused(tmp_path: Path, canary: str) -> None:
    """THREATS C4: the key decrypts it, but the envelope names another row."""
    vault = vault_in(tmp_path)
    vault.put("key", "alice", ORIGIN_A, "token", {}, {"value": f"{canary}-alice"})
    vault.put("key", "bob", ORIGIN_A, "token", {}, {"value": f"{canary}-bob"})
    store = vault.store(create=False)
    assert store is not None
    bob = store.find("key", "bob")
    assert bob is not None
    vault.close()
    _swap(tmp_path / "credentials.db", "ciphertext", bob.ciphertext, "key", "alice")
    with pytest.raises(CredentialUnavailable, match="sealed for another row") as caught:
        vault_in(tmp_path).lookup("key", "alice", ORIGIN_A)
    assert canary not in caught.value.message


def test_a_credential_bound_to_one_origin_is_refused_for_another(tmp_path: Path, canary: str) -> None:
    vault = vault_in(tmp_path)
    vault.put("key", "", ORIGIN_A, "token", {}, {"value": canary})
    with pytest.raises(CredentialUnavailable, match=f"is bound to {ORIGIN_A}, not to {ORIGIN_B}"):
        vault.lookup("key", "", ORIGIN_B)
    vault.close()
    # Rewriting the row's origin column does not help: the envelope still says A.
    _swap(tmp_path / "credentials.db", "origin", ORIGIN_B, "key", "")
    with pytest.raises(CredentialUnavailable, match="sealed for another origin"):
        vault_in(tmp_path).lookup("key", "", ORIGIN_B)


def test_the_wrong_key_gives_credential_unavailable_not_a_crash(
    tmp_path: Path, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault_in(tmp_path).put("key", "", ORIGIN_A, "token", {}, {"value": canary})
    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())
    with pytest.raises(CredentialUnavailable, match="cannot be decrypted"):
        vault_in(tmp_path).lookup("key", "", ORIGIN_A)


def test_a_key_file_other_users_can_read_is_refused(tmp_path: Path, canary: str) -> None:
    vault_in(tmp_path).put("key", "", ORIGIN_A, "token", {}, {"value": canary})
    os.chmod(tmp_path / "credentials.key", 0o644)
    with pytest.raises(CredentialSetupError, match="chmod 600"):
        vault_in(tmp_path)


def test_rows_without_their_key_stop_the_runtime_and_no_key_is_generated(tmp_path: Path, canary: str) -> None:
    """THREATS C2."""
    vault_in(tmp_path).put("key", "", ORIGIN_A, "token", {}, {"value": canary})
    (tmp_path / "credentials.key").unlink()
    with pytest.raises(CredentialKeyMissing, match="no key is available"):
        Runtime(Settings(server=ServerSettings(data_dir=tmp_path)))
    assert not (tmp_path / "credentials.key").exists()


def test_toolkiln_serve_refuses_to_start_when_the_key_of_existing_rows_is_missing(tmp_path: Path, canary: str) -> None:
    data = tmp_path / ".toolkiln"
    vault_in(data).put("key", "", ORIGIN_A, "token", {}, {"value": canary})
    (data / "credentials.key").unlink()
    (tmp_path / "toolkiln.toml").write_text('[server]\ndata_dir = ".toolkiln"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")}
    done = subprocess.run(
        toolkiln_command("serve", "--transport", "http", "--port", "0"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "1 encrypted credential(s) but no key is available" in done.stderr
    assert "none is generated" in done.stderr
    assert not (data / "credentials.key").exists()


@pytest.mark.anyio
async def test_a_corrupted_ciphertext_is_a_tool_error_and_the_server_keeps_serving(
    tmp_path: Path, api: Api, elsewhere: Api, canary: str, leak_watch: LeakWatch
) -> None:
    """THREATS C2: per-call InvalidToken → "credential unavailable", audited; other tools still work."""
    async with gateway(tmp_path, api, elsewhere, canary, leak_watch) as gw:
        db = tmp_path / "data" / "credentials.db"
        with sqlite3.connect(db) as conn:
            (blob,) = conn.execute("SELECT ciphertext FROM credentials WHERE name = 'header-key'").fetchone()
            broken = bytes(blob[:40]) + (b"A" if blob[40:41] != b"A" else b"B") + bytes(blob[41:])
            conn.execute("UPDATE credentials SET ciphertext = ? WHERE name = 'header-key'", (broken,))
        result = await call(gw, leak_watch, "echoHeader")
        assert result.is_error
        assert text_of(result) == (
            "credential unavailable: 'header-key' cannot be decrypted (wrong key or corrupted ciphertext)"
        )
        assert api.state.requests == []
        still = await call(gw, leak_watch, "echoQuery")
        assert not still.is_error
    with sqlite3.connect(tmp_path / "data" / "audit.db") as conn:
        rows = conn.execute("SELECT tool, status, body FROM audit_records WHERE kind = 'outcome'").fetchall()
    leak_watch.observe("audit rows", rows)
    failed = [r for r in rows if r[0] == "echoHeader"]
    assert len(failed) == 1
    assert failed[0][1] == "tool_error"
    assert json.loads(failed[0][2])["error"] == "CredentialUnavailable"
