"""Sealed `requestState`: only an unmodified token from this process, for this tool, in time."""

from __future__ import annotations

import base64
import json

import pytest

from server.fixtures.state import InvalidRequestState, StateSeal

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _reencode(token: str, edit: dict[str, object]) -> str:
    """Change the readable payload but keep the original MAC (what a client could try)."""
    body, mac = token.split(".")
    envelope = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    envelope.update(edit)
    raw = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + mac


def test_a_sealed_state_comes_back_unchanged_for_its_own_tool() -> None:
    seal = StateSeal(KEY)

    assert seal.unseal("tool", seal.seal("tool", {"round": 2, "name": "Alice"})) == {"round": 2, "name": "Alice"}


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t: t + "-TAMPERED", id="suffix-appended"),
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="mac-byte-flipped"),
        pytest.param(lambda t: _reencode(t, {"data": {"round": 3}}), id="payload-edited-mac-kept"),
        pytest.param(lambda t: _reencode(t, {"exp": 9e18}), id="expiry-extended-mac-kept"),
        pytest.param(lambda t: t.split(".")[0], id="mac-removed"),
        pytest.param(lambda t: t.replace(".", ".."), id="extra-separator"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "x" * 10_000, id="oversized"),
        pytest.param(lambda t: "%%%.%%%", id="not-base64"),
        pytest.param(lambda t: StateSeal(b"other-process-key".ljust(32)).seal("tool", {"round": 1}), id="other-key"),
        pytest.param(lambda t: StateSeal(KEY).seal("other_tool", {"round": 1}), id="other-tool"),
    ],
)
def test_a_tampered_or_foreign_state_is_refused(tamper: object) -> None:
    seal = StateSeal(KEY)
    token = seal.seal("tool", {"round": 1})

    with pytest.raises(InvalidRequestState) as refused:
        seal.unseal("tool", tamper(token))  # type: ignore[operator]

    assert refused.value.code == -32602


def test_a_state_past_its_lifetime_is_refused() -> None:
    clock = Clock()
    seal = StateSeal(KEY, ttl_s=60, clock=clock)
    token = seal.seal("tool", {"round": 1})

    clock.now += 61

    with pytest.raises(InvalidRequestState):
        seal.unseal("tool", token)


def test_each_process_gets_its_own_key_so_a_restart_invalidates_old_states() -> None:
    token = StateSeal().seal("tool", {"round": 1})

    with pytest.raises(InvalidRequestState):
        StateSeal().unseal("tool", token)
