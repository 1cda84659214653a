"""THREATS H U1/U2: any edit, deletion, reordering, insertion, truncation or rewrite is detected.

The chain is written by the real pipeline; the attacks are plain SQL on the database file, which is
exactly the access an attacker without the key has.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from server.audit.canonical import GENESIS, canonical_json, chain_hash
from server.audit.ledger import LedgerPaths
from server.audit.verify import verify_chain
from tests.server.audit.support import call, make_runtime, settings_for
from tools.model import CallContext, Tool, ToolResult

RECORDS = 40  # 20 calls, an intent and an outcome each


async def _ok(arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text(f"ok {arguments.get('n')}")


TOOL = Tool(
    name="work",
    description="work",
    input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
    executor=_ok,
    source="test",
)


@pytest.fixture
def chain(tmp_path: Path) -> LedgerPaths:
    import anyio

    runtime = make_runtime(tmp_path, [TOOL])

    async def write() -> None:
        async with runtime.running():
            for n in range(RECORDS // 2):
                await call(runtime, "work", {"n": n})

    anyio.run(write)
    paths = LedgerPaths.from_settings(settings_for(tmp_path))
    assert verify_chain(paths.db, paths.key, paths.head).ok
    return paths


def _sql(paths: LedgerPaths, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(paths.db)
    with conn:
        for statement, params in statements:
            conn.execute(statement, params)
    conn.close()


def _row(paths: LedgerPaths, seq: int) -> tuple[Any, ...]:
    conn = sqlite3.connect(paths.db)
    try:
        row = conn.execute("SELECT * FROM audit_records WHERE seq = ?", (seq,)).fetchone()
    finally:
        conn.close()
    assert row is not None
    return tuple(row)


def _edit_body(paths: LedgerPaths, seq: int, change: Callable[[dict[str, Any]], None], *, rehash: bool) -> None:
    row = _row(paths, seq)
    body = json.loads(row[7])
    change(body)
    text = canonical_json(body).decode("utf-8")
    new_hash = chain_hash(row[8], text.encode("utf-8")) if rehash else row[9]
    _sql(paths, ("UPDATE audit_records SET body = ?, hash = ? WHERE seq = ?", (text, new_hash, seq)))


def _first_bad(paths: LedgerPaths) -> tuple[int | None, str | None]:
    report = verify_chain(paths.db, paths.key, paths.head)
    assert not report.ok
    return report.first_bad_seq, report.problem


def test_editing_one_field_of_a_record_is_reported_at_that_seq(chain: LedgerPaths) -> None:
    _edit_body(chain, 12, lambda body: body.update(status="denied"), rehash=False)
    assert _first_bad(chain) == (12, "hash does not match the record body (edited)")


def test_editing_a_record_and_recomputing_its_hash_is_reported_at_that_seq(chain: LedgerPaths) -> None:
    _edit_body(chain, 12, lambda body: body.update(cost=0), rehash=True)
    seq, problem = _first_bad(chain)
    assert seq == 12
    assert problem is not None
    assert "re-hashed" in problem


def test_editing_an_indexed_column_behind_the_body_is_reported(chain: LedgerPaths) -> None:
    _sql(chain, ("UPDATE audit_records SET principal = 'mallory' WHERE seq = 7", ()))
    assert _first_bad(chain) == (7, "column 'principal' differs from the hashed body (edited)")


def test_deleting_a_record_in_the_middle_is_reported_at_the_missing_seq(chain: LedgerPaths) -> None:
    _sql(chain, ("DELETE FROM audit_records WHERE seq = 20", ()))
    seq, problem = _first_bad(chain)
    assert seq == 20
    assert problem is not None
    assert "missing" in problem


def test_deleting_a_record_and_renumbering_the_rest_is_reported_at_the_gap(chain: LedgerPaths) -> None:
    _sql(
        chain,
        ("DELETE FROM audit_records WHERE seq = 20", ()),
        ("UPDATE audit_records SET seq = -(seq - 1) WHERE seq > 20", ()),
        ("UPDATE audit_records SET seq = -seq WHERE seq < 0", ()),
    )
    assert _first_bad(chain)[0] == 20


def test_swapping_two_records_is_reported_at_the_first_of_them(chain: LedgerPaths) -> None:
    a, b = _row(chain, 9), _row(chain, 10)
    columns = "kind = ?, call_id = ?, ts = ?, principal = ?, tool = ?, status = ?, body = ?, prev_hash = ?, hash = ?"
    _sql(
        chain,
        (f"UPDATE audit_records SET {columns} WHERE seq = 9", (*b[1:],)),
        (f"UPDATE audit_records SET {columns} WHERE seq = 10", (*a[1:],)),
    )
    assert _first_bad(chain)[0] == 9


def test_inserting_a_forged_record_in_the_middle_is_reported(chain: LedgerPaths) -> None:
    # The forger shifts records 16.. up by one and writes a well-formed, correctly hashed record 16.
    prev = _row(chain, 15)
    forged = json.loads(_row(chain, 16)[7])
    forged.update(seq=16, principal="mallory", status="allowed")
    body = canonical_json(forged)
    _sql(
        chain,
        ("UPDATE audit_records SET seq = -(seq + 1) WHERE seq >= 16", ()),
        ("UPDATE audit_records SET seq = -seq WHERE seq < 0", ()),
        (
            "INSERT INTO audit_records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                16,
                forged["kind"],
                forged["call_id"],
                forged["ts"],
                "mallory",
                forged["tool"],
                forged["status"],
                body.decode(),
                prev[9],
                chain_hash(prev[9], body),
            ),
        ),
    )
    seq, problem = _first_bad(chain)
    # Record 16 is self-consistent and linked; the displaced original 16 can no longer be.
    assert seq == 17
    assert problem is not None
    assert "different seq" in problem


def test_deleting_the_last_five_records_is_detected_by_the_signed_head(chain: LedgerPaths) -> None:
    # THREATS U2: the checkpoint rows naming them go too; only the head outside the DB remains.
    _sql(
        chain,
        ("DELETE FROM audit_records WHERE seq > ?", (RECORDS - 5,)),
        ("DELETE FROM audit_checkpoints WHERE seq > ?", (RECORDS - 5,)),
    )
    seq, problem = _first_bad(chain)
    assert seq == RECORDS - 4
    assert problem is not None
    assert "truncated" in problem


def _rewrite_whole_chain(paths: LedgerPaths) -> None:
    conn = sqlite3.connect(paths.db)
    rows = conn.execute("SELECT seq, body FROM audit_records ORDER BY seq").fetchall()
    prev = GENESIS
    with conn:
        for seq, text in rows:
            body = json.loads(text)
            if body.get("principal") == "alice":
                body["principal"] = "bob"
            raw = canonical_json(body)
            digest = chain_hash(prev, raw)
            conn.execute(
                "UPDATE audit_records SET body = ?, principal = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (raw.decode(), body["principal"], prev, digest, seq),
            )
            prev = digest
    conn.close()


def test_rewriting_the_whole_chain_with_database_access_is_detected_by_the_checkpoints(chain: LedgerPaths) -> None:
    _rewrite_whole_chain(chain)
    seq, problem = _first_bad(chain)
    assert problem is not None
    assert "signed checkpoint" in problem
    assert seq is not None


def test_rewriting_the_chain_and_its_checkpoint_rows_is_detected_by_the_head_outside(chain: LedgerPaths) -> None:
    _rewrite_whole_chain(chain)
    _sql(chain, ("DELETE FROM audit_checkpoints", ()))
    seq, problem = _first_bad(chain)
    assert seq == RECORDS
    assert problem is not None
    assert "signed checkpoint" in problem


def test_forging_a_checkpoint_without_the_key_is_detected(chain: LedgerPaths) -> None:
    _sql(chain, ("INSERT OR REPLACE INTO audit_checkpoints VALUES (?, ?, ?, ?)", (3, "0" * 64, "f" * 64, "x")))
    seq, problem = _first_bad(chain)
    assert seq == 3
    assert problem is not None
    assert "checkpoint signature invalid" in problem


def test_the_key_lives_outside_the_database_with_owner_only_permissions(chain: LedgerPaths) -> None:
    assert chain.key.parent == chain.db.parent
    assert chain.key != chain.db
    assert chain.key.stat().st_mode & 0o777 == 0o600
    key_text = chain.key.read_text().strip()
    assert key_text not in chain.db.read_bytes().decode("latin-1")


def _cli(paths: LedgerPaths, *args: str) -> subprocess.CompletedProcess[str]:
    config = paths.db.parent / "toolkiln.toml"
    config.write_text(f'[server]\ndata_dir = "{paths.db.parent}"\n', encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "server", "audit", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_verify_command_proves_an_intact_chain_and_names_the_first_bad_record(chain: LedgerPaths) -> None:
    intact = _cli(chain, "verify")
    assert intact.returncode == 0, intact.stderr
    assert f"audit chain OK: {RECORDS} records" in intact.stdout
    _edit_body(chain, 5, lambda body: body.update(tool="other"), rehash=False)
    broken = _cli(chain, "verify", "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert (report["ok"], report["first_bad_seq"]) == (False, 5)


def test_verify_refuses_when_the_key_is_missing(chain: LedgerPaths) -> None:
    chain.key.unlink()
    result = _cli(chain, "verify")
    assert result.returncode == 1
    assert "audit key" in result.stderr
