"""A bad policy reload keeps the last good policy, on tools and on the catalog alike (THREATS R5).

The policy file is re-read on every decision here (`reload_interval_s = 0`); what a readonly
caller sees over the SDK `Client` is the proof that no broken file ever opened anything up.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.config import Settings
from server.fixtures import install_fixtures
from server.runtime import Runtime

pytestmark = pytest.mark.anyio

GOOD = """
[[rules]]
id = "readonly-no-simple-prompt"
effect = "deny"
roles = ["readonly"]
tools = ["prompt:test_simple_prompt", "resource:test://static-text"]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class PolicyFile:
    """The policy file, rewritten with a fresh modification time each time (so a reload is due)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamp = 1_000_000_000_000_000_000

    def write(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")
        self.stamp += 1_000_000_000
        os.utime(self.path, ns=(self.stamp, self.stamp))


@asynccontextmanager
async def readonly_client(tmp_path: Path, policy: PolicyFile) -> AsyncIterator[tuple[Runtime, Client]]:
    data: dict[str, Any] = {
        "server": {"data_dir": str(tmp_path)},
        "stdio": {"roles": ["readonly"]},
        "policy": {"file": str(policy.path), "reload_interval_s": 0},
    }
    runtime = Runtime(Settings.model_validate(data))
    install_fixtures(runtime)
    async with runtime.running(), Client(build_server(runtime), mode="legacy") as client:
        yield runtime, client


async def visible(client: Client) -> tuple[bool, bool]:
    prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
    resources = {resource.uri for resource in (await client.list_resources()).resources}
    return "test_simple_prompt" in prompts, "test://static-text" in resources


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param("[[rules]]\nid = ", id="not-toml"),
        pytest.param('[[rules]]\nid = "x"\nroles = ["ghost"]\n', id="unknown-role"),
        pytest.param('[[rules]]\nid = "x"\nroles = ["readonly"]\nwhen = {arg = "a", matches = "("}\n', id="bad-regex"),
        pytest.param('[[rules]]\nid = "x"\nroles = ["readonly"]\neffect = "maybe"\n', id="bad-effect"),
        pytest.param("surprise = true\n", id="unknown-key"),
        pytest.param(None, id="file-deleted"),
    ],
)
async def test_a_broken_policy_file_keeps_the_last_good_policy_for_prompts_and_resources(
    tmp_path: Path, broken: str | None
) -> None:
    policy = PolicyFile(tmp_path / "policy.toml")
    policy.write(GOOD)
    async with readonly_client(tmp_path, policy) as (runtime, client):
        assert await visible(client) == (False, False)
        if broken is None:
            policy.path.unlink()
        else:
            policy.write(broken)
        assert await visible(client) == (False, False)  # never fails open
        assert runtime.policy.last_error is not None
        assert runtime.policy.current.version == 1
        # The kept policy still serves what it allowed.
        assert (await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})).messages
        policy.write("")  # a good file again: the rule is gone, so the entries appear
        assert await visible(client) == (True, True)
        assert runtime.policy.last_error is None
