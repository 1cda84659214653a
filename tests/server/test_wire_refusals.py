"""Refusals and the client-capability check are raised errors of the one tree, seen by every step.

A rate limit, a quota or a duplicate call in progress is raised inside the chain (so the call
log, the metrics and the audit name it), reaches a client through `server.wire` with its text and
structured details, and comes back to an in-process caller as that same result. A tool needing a
client capability the client lacks is refused by a pipeline step: -32021 with `data`, logged and
audited, and only after the caller was allowed to see the tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from structlog.testing import capture_logs

from server.app import build_server
from server.fixtures import install_fixtures
from server.limits import RateLimited
from server.runtime import Runtime
from tests.server.audit.support import make_runtime, records
from tools.model import CallContext, Principal, Tool, ToolResult

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _ok(_: Mapping[str, Any], __: CallContext) -> ToolResult:
    return ToolResult.text("ok")


PING = Tool(name="ping", description="ping", input_schema={"type": "object"}, executor=_ok, source="test")
ONCE = {"rules": [{"name": "once", "limit": 1, "period_s": 3600}]}


def _context() -> CallContext:
    return CallContext(principal=Principal("alice", ("admin",)))


async def test_a_rate_limit_is_raised_inside_the_chain_and_named_by_the_log_and_the_audit(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [PING], limits=ONCE)
    async with runtime.running():
        await runtime.pipeline.run("ping", {}, _context())
        with capture_logs() as logs, pytest.raises(RateLimited) as caught:
            await runtime.pipeline.run("ping", {}, _context())
    assert caught.value.structured["error"] == "rate_limited"
    assert [entry["outcome"] for entry in logs if entry["event"] == "tool_call"] == ["RateLimited"]
    outcome = records(tmp_path / "audit.db")[-1]
    assert (outcome["kind"], outcome["status"], outcome["limit"]) == ("outcome", "rate_limited", "once")


async def test_an_in_process_caller_gets_a_refusal_as_the_result_a_client_gets(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path, [PING], limits=ONCE)
    async with runtime.running(), Client(build_server(runtime), mode="legacy") as client:
        await client.call_tool("ping", {})
        over_the_wire = await client.call_tool("ping", {})
        # The same caller as the client's (the local profile), so the same bucket refuses it.
        local = CallContext(principal=runtime.local_principal("stdio"))
        in_process = await runtime.pipeline.call_tool("ping", {}, local)
    assert isinstance(in_process, ToolResult)
    assert in_process.is_error
    assert over_the_wire.is_error
    assert over_the_wire.structured_content is not None
    assert in_process.structured is not None
    assert in_process.structured["error"] == over_the_wire.structured_content["error"] == "rate_limited"
    assert in_process.content[0].text.startswith("Rate limit 'once' exceeded")  # type: ignore[union-attr]
    assert over_the_wire.content[0].text.startswith("Rate limit 'once' exceeded")  # type: ignore[union-attr]


def _fixture_runtime(tmp_path: Path, roles: list[str]) -> Runtime:
    runtime = make_runtime(tmp_path, [], stdio={"roles": roles})
    install_fixtures(runtime)
    return runtime


async def test_a_missing_client_capability_is_minus_32021_with_data_and_is_logged_and_audited(
    tmp_path: Path,
) -> None:
    runtime = _fixture_runtime(tmp_path, ["admin"])
    async with runtime.running(), Client(build_server(runtime), mode="legacy") as client:
        with capture_logs() as logs, pytest.raises(MCPError) as caught:
            await client.call_tool("test_missing_capability", {})
    assert caught.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert caught.value.error.data == {"requiredCapabilities": {"sampling": {}}}
    logged = [entry for entry in logs if entry["event"] == "tool_call"]
    assert [(entry["tool"], entry["outcome"]) for entry in logged] == [("test_missing_capability", "rejected")]
    statuses = [(r["tool"], r["status"]) for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"]
    assert statuses == [("test_missing_capability", "invalid")]


async def test_a_caller_who_may_not_see_the_tool_learns_nothing_about_its_capabilities(tmp_path: Path) -> None:
    runtime = _fixture_runtime(tmp_path, ["readonly"])
    async with runtime.running(), Client(build_server(runtime), mode="legacy") as client:
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("test_missing_capability", {})
        with pytest.raises(MCPError) as missing:
            await client.call_tool("test_missing_capabilitx", {})
    assert hidden.value.error.code == missing.value.error.code == -32602
    assert hidden.value.error.data is None
    assert hidden.value.error.message == missing.value.error.message.replace("capabilitx", "capability")
