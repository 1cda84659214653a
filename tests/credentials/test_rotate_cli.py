"""`toolkiln credentials` and key rotation: values never on argv or in listings; a rotation
SIGKILLed half-way resumes, and afterwards every row opens with the new key only (THREATS C3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from credentials.settings import CredentialSettings
from credentials.store import CredentialStore
from credentials.vault import Vault
from tests.conftest import LeakWatch
from tests.support.servers import toolkiln_command

ORIGIN = "https://api.example.com"
ROWS = 6
KILL_AFTER = 3


def toolkiln(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")}
    return subprocess.run(
        toolkiln_command(*args), cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "toolkiln.toml").write_text('[server]\ndata_dir = ".toolkiln"\n')
    return tmp_path


def test_set_reads_the_value_from_stdin_and_list_shows_everything_but_the_value(
    project: Path, canary: str, leak_watch: LeakWatch
) -> None:
    stored = toolkiln(project, "credentials", "set", "github", "--origin", "https://API.github.com/", stdin=canary)
    assert stored.returncode == 0, stored.stderr
    basic = toolkiln(
        project, "credentials", "set", "jira", "--origin", ORIGIN, "--kind", "basic", "--username", "svc",
        "--principal", "alice", stdin=canary + "\n",
    )  # fmt: skip
    assert basic.returncode == 0, basic.stderr
    listed = toolkiln(project, "credentials", "list")
    as_json = toolkiln(project, "credentials", "list", "--json")
    for done in (stored, basic, listed, as_json):
        leak_watch.observe("credentials cli", [done.stdout, done.stderr])
        assert canary not in done.stdout + done.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("github  (shared)  https://api.github.com  token  created ")
    assert lines[1].startswith("jira  alice  https://api.example.com  basic  created ")
    vault = Vault.open(CredentialSettings(), project / ".toolkiln")
    assert vault.lookup("jira", "alice", ORIGIN).secret("password").reveal() == canary
    vault.close()
    deleted = toolkiln(project, "credentials", "delete", "github")
    assert deleted.returncode == 0
    assert toolkiln(project, "credentials", "delete", "github").returncode == 1
    assert "github" not in toolkiln(project, "credentials", "list").stdout


def test_set_has_no_way_to_take_the_value_from_the_command_line(project: Path) -> None:
    done = toolkiln(project, "credentials", "set", "x", "--origin", ORIGIN, "--value", "nope", stdin="v")
    assert done.returncode == 2
    assert "unrecognized arguments: --value" in done.stderr


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from credentials.rotate import rotate_key
    from credentials.vault import Vault

    data = Path(sys.argv[1])
    done = []

    def die_half_way(row):
        done.append(row.id)
        if len(done) == {kill_after}:
            os.kill(os.getpid(), signal.SIGKILL)

    rotate_key(Vault(data / "credentials.db", data / "credentials.key"), on_row=die_half_way)
    """
)


def test_a_rotation_killed_half_way_resumes_and_every_row_opens_with_the_new_key_only(
    project: Path, canary: str
) -> None:
    data = project / ".toolkiln"
    vault = Vault.open(CredentialSettings(), data)
    for n in range(ROWS):
        vault.put(f"cred-{n}", "" if n % 2 else f"user-{n}", ORIGIN, "token", {}, {"value": f"{canary}-{n}"})
    store = vault.store(create=False)
    assert store is not None
    before = {row.id: (row.created_at, row.updated_at, row.ciphertext) for row in store.all()}
    old_key = (data / "credentials.key").read_text().strip()
    vault.close()

    killed = subprocess.run(
        [sys.executable, "-c", _KILLER.format(kill_after=KILL_AFTER), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    keys = (data / "credentials.key").read_text().split()
    assert len(keys) == 2
    assert keys[1] == old_key
    new_key = keys[0]
    half = CredentialStore(data / "credentials.db")
    changed = [row for row in half.all() if row.ciphertext != before[row.id][2]]
    half.close()
    assert len(changed) == KILL_AFTER

    resumed = toolkiln(project, "credentials", "rotate-key")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {ROWS - KILL_AFTER} credential(s) resealed" in resumed.stderr
    assert "the old key was removed from the key file" in resumed.stderr
    assert (data / "credentials.key").read_text().split() == [new_key]

    after = CredentialStore(data / "credentials.db")
    rows = after.all()
    after.close()
    assert sorted(row.id for row in rows) == sorted(before)
    for row in rows:
        assert (row.created_at, row.updated_at) == before[row.id][:2]
        Fernet(new_key.encode()).decrypt(row.ciphertext)
        with pytest.raises(InvalidToken):
            Fernet(old_key.encode()).decrypt(row.ciphertext)
    vault = Vault.open(CredentialSettings(), data)
    assert [
        vault.lookup(f"cred-{n}", "" if n % 2 else f"user-{n}", ORIGIN).secret("value").reveal() for n in range(ROWS)
    ] == [f"{canary}-{n}" for n in range(ROWS)]
    vault.close()


def test_a_second_rotation_starts_from_the_new_key(project: Path, canary: str) -> None:
    data = project / ".toolkiln"
    Vault.open(CredentialSettings(), data).put("a", "", ORIGIN, "token", {}, {"value": canary})
    first = (data / "credentials.key").read_text().split()
    assert toolkiln(project, "credentials", "rotate-key").returncode == 0
    second = (data / "credentials.key").read_text().split()
    assert toolkiln(project, "credentials", "rotate-key").returncode == 0
    third = (data / "credentials.key").read_text().split()
    assert len({first[0], second[0], third[0]}) == 3
    assert len(third) == 1
