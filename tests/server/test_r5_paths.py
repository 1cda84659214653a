"""Alternate paths into a real `toolkiln serve` get the same policy, limits and audit (THREATS R5).

- a `tools/call` sent as a notification (no `id`) never executes, over HTTP in both protocol eras
  and over stdio;
- the legacy SSE endpoint hides and refuses resources and prompts exactly as Streamable HTTP does;
- `/metrics` is guarded like the MCP endpoint once `[auth]` is on, `/readyz` reports the audit store;
- the Mcp-Param header check (2026-07-28) cannot tell a hidden tool from a missing one.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError

from tests.e2e.raw import (
    MODERN_META,
    StdioPeer,
    call_body,
    modern_headers,
    open_session,
    rpc_payload,
)
from tests.support.servers import RunningServer, serve_http, toolkiln_command

pytestmark = pytest.mark.anyio

CONFIG = """
[auth]
api_tokens = true
token_cache_s = 0

[[policy.rules]]
id = "readonly-no-static-text"
effect = "deny"
roles = ["readonly"]
tools = ["resource:test://static-text", "prompt:test_simple_prompt"]
"""
ROLES = ("readonly", "admin")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def outcome_tools(data_dir: Path) -> list[str]:
    """The tool named by every audit outcome record, in order."""
    conn = sqlite3.connect(data_dir / "audit.db")
    try:
        bodies = [json.loads(body) for (body,) in conn.execute("SELECT body FROM audit_records ORDER BY seq")]
    finally:
        conn.close()
    return [body["tool"] for body in bodies if body["kind"] == "outcome"]


def as_notification(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "id"}


# -- notification-shaped calls -----------------------------------------------------------------


def test_a_tools_call_sent_as_a_notification_never_executes_over_http(tmp_path: Path) -> None:
    with serve_http("--conformance-fixtures", cwd=tmp_path) as server, httpx.Client(timeout=30) as http:
        session = open_session(http, server.url)
        legacy = http.post(server.url, headers=session, json=as_notification(call_body(1, "test_simple_text", {})))
        modern_body = call_body(2) | {"params": {"name": "test_simple_text", "arguments": {}, "_meta": MODERN_META}}
        modern = http.post(
            server.url, headers=modern_headers("tools/call", "test_simple_text"), json=as_notification(modern_body)
        )
        # A real call afterwards: it is answered, and it is the only call the audit log knows.
        answered = http.post(server.url, headers=session, json=call_body(3, "test_image_content", {}))
    assert legacy.status_code in (202, 400), legacy.text
    assert modern.status_code in (202, 400), modern.text
    assert "result" not in legacy.text
    assert "result" not in modern.text
    assert rpc_payload(answered)["id"] == 3
    assert outcome_tools(tmp_path / ".toolkiln") == ["test_image_content"]


def test_a_tools_call_sent_as_a_notification_never_executes_over_stdio(tmp_path: Path) -> None:
    peer = StdioPeer(toolkiln_command("serve", "--conformance-fixtures"), cwd=tmp_path)
    try:
        peer.handshake()
        peer.send(as_notification(call_body(1, "test_simple_text", {})))
        peer.send(call_body(2, "test_image_content", {}))
        reply = peer.receive()  # the first thing on stdout answers the real request
    finally:
        assert peer.close() == 0
    assert reply["id"] == 2
    assert "result" in reply
    assert outcome_tools(tmp_path / ".toolkiln") == ["test_image_content"]


# -- servers with [auth] -----------------------------------------------------------------------


def _token(workdir: Path, role: str) -> str:
    made = subprocess.run(
        toolkiln_command(
            "tokens", "create", "--principal", f"{role}-bot", "--roles", role, "--config", "toolkiln.toml"
        ),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=workdir,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("r5")
    (path / "toolkiln.toml").write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokens(workdir: Path) -> dict[str, str]:
    return {role: _token(workdir, role) for role in ROLES}


def _serve(workdir: Path, transport: str) -> Iterator[RunningServer]:
    with serve_http("--conformance-fixtures", "--config", "toolkiln.toml", transport=transport, cwd=workdir) as server:
        yield server


@pytest.fixture(scope="module")
def sse_server(workdir: Path, tokens: dict[str, str]) -> Iterator[RunningServer]:
    yield from _serve(workdir, "sse")


@pytest.fixture(scope="module")
def http_server(workdir: Path, tokens: dict[str, str]) -> Iterator[RunningServer]:
    yield from _serve(workdir, "http")


async def _error(request: Any) -> types.ErrorData:
    with pytest.raises(MCPError) as caught:
        await request
    return caught.value.error


async def test_the_legacy_sse_endpoint_hides_and_refuses_resources_and_prompts_by_policy(
    sse_server: RunningServer, tokens: dict[str, str]
) -> None:
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for role in ROLES:
        transport = sse_client(sse_server.url, headers={"Authorization": f"Bearer {tokens[role]}"})
        async with Client(transport, mode="legacy") as client:
            resources = {resource.uri for resource in (await client.list_resources()).resources}
            prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
            seen[role] = (resources, prompts)
            if role == "readonly":
                denied = await _error(client.read_resource("test://static-text"))
                missing = await _error(client.read_resource("test://missing"))
                assert (
                    (denied.code, denied.message) == (missing.code, missing.message) == (-32602, "Resource not found")
                )
                hidden_prompt = await _error(client.get_prompt("test_simple_prompt"))
                assert hidden_prompt.message == "Unknown prompt: test_simple_prompt"
            else:
                assert (await client.read_resource("test://static-text")).contents
                assert (await client.get_prompt("test_simple_prompt")).messages
    assert "test://static-text" not in seen["readonly"][0]
    assert "test_simple_prompt" not in seen["readonly"][1]
    assert "test://static-text" in seen["admin"][0]
    assert "test_simple_prompt" in seen["admin"][1]
    assert seen["readonly"][0] == seen["admin"][0] - {"test://static-text"}


# -- /metrics and /readyz ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_metrics_needs_a_token_whose_principal_the_policy_lets_read_them(
    workdir: Path, tokens: dict[str, str], transport: str, request: pytest.FixtureRequest
) -> None:
    server: RunningServer = request.getfixturevalue(f"{transport}_server")
    url = f"{server.base}/metrics"
    anonymous = httpx.get(url, timeout=30)
    readonly = httpx.get(url, headers={"Authorization": f"Bearer {tokens['readonly']}"}, timeout=30)
    admin = httpx.get(url, headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=30)
    assert anonymous.status_code == 401
    assert readonly.status_code == 403
    assert admin.status_code == 200
    assert "toolkiln_tool_calls_total" in admin.text


def test_readyz_reports_the_audit_store_and_metrics_stay_open_without_auth(tmp_path: Path) -> None:
    with serve_http(cwd=tmp_path) as server:
        ready = httpx.get(f"{server.base}/readyz", timeout=30)
        metrics = httpx.get(f"{server.base}/metrics", timeout=30)
    assert ready.status_code == 200
    assert ready.json()["audit"] == "ok"
    assert metrics.status_code == 200


def test_readyz_is_degraded_while_another_process_holds_the_audit_store(tmp_path: Path) -> None:  # THREATS K4
    with serve_http(cwd=tmp_path) as server:
        assert httpx.get(f"{server.base}/readyz", timeout=30).json()["audit"] == "ok"
        holder = sqlite3.connect(tmp_path / ".toolkiln" / "audit.db", timeout=1, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            held = httpx.get(f"{server.base}/readyz", timeout=30)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        released = httpx.get(f"{server.base}/readyz", timeout=30)
    assert held.status_code == 503
    assert held.json()["status"] == "degraded"
    assert held.json()["audit"] == "degraded"
    assert released.status_code == 200


# -- Mcp-Param headers (2026-07-28) ------------------------------------------------------------


def _modern_call(server: RunningServer, token: str, name: str) -> httpx.Response:
    # `region` is declared with `x-mcp-header: Region`, and no `Mcp-Param-Region` header is sent:
    # for a tool the caller can see, that is a header mismatch (400) before dispatch.
    body = call_body(9) | {"params": {"name": name, "arguments": {"region": "eu"}, "_meta": MODERN_META}}
    headers = modern_headers("tools/call", name) | {"Authorization": f"Bearer {token}"}
    return httpx.post(server.url, headers=headers, json=body, timeout=30)


def test_the_mcp_param_header_check_cannot_tell_a_hidden_tool_from_a_missing_one(
    http_server: RunningServer, tokens: dict[str, str]
) -> None:
    visible = _modern_call(http_server, tokens["admin"], "test_x_mcp_header")
    hidden = _modern_call(http_server, tokens["readonly"], "test_x_mcp_header")
    missing = _modern_call(http_server, tokens["readonly"], "test_x_mcp_heade_")
    assert visible.status_code == 400  # the check is live for a caller who may see the tool
    assert hidden.status_code == missing.status_code
    hidden_error, missing_error = rpc_payload(hidden)["error"], rpc_payload(missing)["error"]
    assert hidden_error["code"] == missing_error["code"] == -32602
    assert hidden_error["message"] == missing_error["message"].replace("test_x_mcp_heade_", "test_x_mcp_header")
