"""Loading and hot-reloading the policy file: a bad file never opens anything up (THREATS R5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.config import load_settings
from server.policy import PolicyHolder, PolicySettings
from tests.server.policy.support import make_tool
from tools.errors import ConfigError
from tools.model import Principal

GOOD = """
[roles.support]
inherits = ["readonly"]

[[rules]]
id = "support-refunds"
roles = ["support"]
tools = ["refund"]
"""
REFUND = make_tool("refund", access="destructive")
SUPPORT = Principal("sam", ("support",))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # Some filesystems keep a coarse mtime; bump it so every write is a visible change.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    write(path, GOOD)
    return path


def holder_for(path: Path, clock: Clock) -> PolicyHolder:
    return PolicyHolder(PolicySettings(file=path, reload_interval_s=1.0), clock=clock)


def test_a_policy_file_is_read_relative_to_the_config_file(tmp_path: Path, policy_file: Path) -> None:
    config = tmp_path / "toolkiln.toml"
    config.write_text('[policy]\nfile = "policy.toml"\n', encoding="utf-8")
    holder = PolicyHolder.from_settings(load_settings(config))
    assert holder.current.decide(REFUND, SUPPORT, {}).rule == "support-refunds"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("[[rules]\nid = 1", "not valid TOML", id="bad-toml"),
        pytest.param(
            '[[rules]]\nid = "x"\nroles = ["admin"]\neffect = "maybe"\n',
            "rules.0.effect: Input",
            id="bad-value",
        ),
        pytest.param('[[rules]]\nid = "x"\nroles = ["ghost"]\n', "unknown role 'ghost'", id="unknown-role"),
        pytest.param('[roles.a]\ninherits = ["a"]\n', "cycle", id="inheritance-cycle"),
        pytest.param('colour = "red"\n', "unknown key", id="unknown-key"),
    ],
)
def test_a_bad_policy_file_refuses_to_start(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "policy.toml"
    write(path, text)
    with pytest.raises(ConfigError, match=where):
        holder_for(path, Clock())


def test_a_missing_policy_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        holder_for(tmp_path / "absent.toml", Clock())


def test_an_inline_policy_error_is_a_config_error_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "toolkiln.toml"
    config.write_text('[[policy.rules]]\nid = "x"\nroles = ["ghost"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown role 'ghost'"):
        load_settings(config)


def test_a_good_reload_takes_effect_after_the_interval(policy_file: Path) -> None:  # THREATS R4
    clock = Clock()
    holder = holder_for(policy_file, clock)
    seen: list[int] = []
    holder.subscribe(lambda policy: seen.append(policy.version))
    assert holder.current.decide(REFUND, SUPPORT, {}).allowed
    write(policy_file, GOOD.replace('tools = ["refund"]', 'tools = ["nothing"]'))
    assert holder.current.decide(REFUND, SUPPORT, {}).allowed, "not re-checked before the interval"
    clock.now = 1.0
    assert not holder.current.decide(REFUND, SUPPORT, {}).allowed
    assert seen == [2]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param("[[rules]\n", id="malformed-toml"),
        pytest.param(GOOD + '\n[[rules]]\nid = "open"\nroles = ["ghost"]\n', id="unknown-role"),
        pytest.param(
            GOOD + '\n[[rules]]\nid = "x"\nroles = ["support"]\nwhen = {arg = "a", matches = "(a)\\\\1"}\n',
            id="bad-regex",
        ),
        pytest.param("", id="emptied"),
        pytest.param(None, id="deleted"),
    ],
)
def test_a_bad_reload_keeps_the_last_good_policy(policy_file: Path, broken: str | None) -> None:  # THREATS R5
    clock = Clock()
    deny = GOOD + '\n[[rules]]\nid = "no-refunds"\neffect = "deny"\nroles = ["support"]\ntools = ["refund"]\n'
    write(policy_file, deny)
    holder = holder_for(policy_file, clock)
    assert holder.current.decide(REFUND, SUPPORT, {}).rule == "no-refunds"
    if broken is None:
        policy_file.unlink()
    else:
        write(policy_file, broken)
    clock.now = 5.0
    if broken == "":
        # An empty file is a valid (empty) policy: the deny goes, but nothing is granted either.
        assert not holder.current.decide(REFUND, SUPPORT, {}).allowed
        return
    decision = holder.current.decide(REFUND, SUPPORT, {})
    assert decision.rule == "no-refunds"
    assert holder.last_error is not None
    assert holder.current.version == 1


def test_a_fixed_file_is_picked_up_after_a_bad_one(policy_file: Path) -> None:
    clock = Clock()
    holder = holder_for(policy_file, clock)
    write(policy_file, "[[rules]\n")
    clock.now = 1.0
    assert holder.current.version == 1
    write(policy_file, GOOD.replace("support-refunds", "support-refunds-v2"))
    clock.now = 2.0
    assert holder.current.decide(REFUND, SUPPORT, {}).rule == "support-refunds-v2"
    assert holder.last_error is None
