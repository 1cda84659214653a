"""Clients we did not write list and call a tool on every transport.

The MCP Inspector v2 CLI and the TypeScript SDK 1.32 `Client` (npm), and the Python SDK 2.3
`Client` in both protocol eras, each against a real `toolkiln serve --conformance-fixtures`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.support.servers import CLIENTS_DIR, RunningServer, run_node

SIMPLE_TEXT = "This is a simple text response for testing."
FIXTURE_TOOLS = {"test_simple_text", "test_trigger_tool_change"}
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"


@pytest.fixture
def target(request: pytest.FixtureRequest, stdio_command: list[str], workdir: Path) -> tuple[str, list[str]]:
    """(transport, target arguments) for the parametrized transport name."""
    transport: str = request.param
    if transport == "stdio":
        return transport, stdio_command
    server: RunningServer = request.getfixturevalue(f"{transport}_server")
    return transport, [server.url]


def _inspector(
    transport_target: tuple[str, list[str]], workdir: Path, *args: str, exit_code: int = 0
) -> dict[str, Any]:
    transport, target = transport_target
    command = ["mcp-inspector", "--cli", *target, "--transport", transport, "--format", "json", *args]
    if transport == "stdio":
        command += ["--cwd", str(workdir)]
    completed = run_node(command)
    assert completed.returncode == exit_code, completed.stderr[-2000:]
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


TRANSPORTS = [pytest.param("stdio", id="stdio"), pytest.param("sse", id="sse"), pytest.param("http", id="http")]
ERAS = [pytest.param("legacy", id="handshake-era"), pytest.param("modern", id="2026-07-28")]


@pytest.mark.npm
@pytest.mark.parametrize("target", TRANSPORTS, indirect=True)
@pytest.mark.parametrize("era", ERAS)
def test_inspector_cli_lists_the_fixture_tools(target: tuple[str, list[str]], era: str, workdir: Path) -> None:
    report = _inspector(target, workdir, "--method", "tools/list", "--protocol-era", era)
    tools = {tool["name"]: tool for tool in report["result"]["tools"]}
    assert set(tools) >= FIXTURE_TOOLS
    assert tools["test_simple_text"]["inputSchema"] == {"type": "object", "properties": {}}


@pytest.mark.npm
@pytest.mark.parametrize("target", TRANSPORTS, indirect=True)
@pytest.mark.parametrize("era", ERAS)
def test_inspector_cli_calls_test_simple_text_and_gets_the_exact_text(
    target: tuple[str, list[str]], era: str, workdir: Path
) -> None:
    report = _inspector(
        target, workdir, "--method", "tools/call", "--tool-name", "test_simple_text", "--protocol-era", era
    )
    result = report["result"]
    assert result["content"] == [{"type": "text", "text": SIMPLE_TEXT}]
    assert result["isError"] is False
    # Only a 2026-07-28 result carries the server's identity in _meta: proof of the era spoken.
    assert (SERVER_INFO_META in result.get("_meta", {})) is (era == "modern")


@pytest.mark.npm
@pytest.mark.parametrize("target", [pytest.param("http", id="http")], indirect=True)
def test_inspector_cli_auto_era_lands_on_2026_over_http(target: tuple[str, list[str]], workdir: Path) -> None:
    report = _inspector(
        target, workdir, "--method", "tools/call", "--tool-name", "test_simple_text", "--protocol-era", "auto"
    )
    assert report["result"]["content"] == [{"type": "text", "text": SIMPLE_TEXT}]
    assert report["result"]["_meta"][SERVER_INFO_META]["name"] == "toolkiln"


@pytest.mark.npm
def test_inspector_cli_reports_an_unknown_argument_as_a_tool_error(http_server: RunningServer, workdir: Path) -> None:
    report = _inspector(
        ("http", [http_server.url]),
        workdir,
        "--method",
        "tools/call",
        "--tool-name",
        "test_simple_text",
        "--tool-arg",
        "surprise=1",
        exit_code=5,  # the inspector's exit status for a tool result with isError
    )
    result = report["result"]
    assert result["isError"] is True
    assert "unknown argument 'surprise'" in result["content"][0]["text"]


def _ts_client(transport_target: tuple[str, list[str]], *args: str) -> dict[str, Any]:
    transport, target = transport_target
    positional = ["--", *target] if transport == "stdio" else target
    completed = run_node(["node", str(CLIENTS_DIR / "ts_client.mjs"), "--transport", transport, *args, *positional])
    assert completed.returncode == 0, completed.stderr[-2000:]
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


@pytest.mark.npm
@pytest.mark.parametrize("target", TRANSPORTS, indirect=True)
def test_typescript_sdk_client_lists_and_calls_test_simple_text(target: tuple[str, list[str]]) -> None:
    report = _ts_client(target, "--call", "test_simple_text")
    assert report["protocolVersion"] == "2025-11-25"
    assert report["serverName"] == "toolkiln"
    assert set(report["tools"]) >= FIXTURE_TOOLS
    assert report["result"] == {"content": [{"type": "text", "text": SIMPLE_TEXT}], "isError": False}


@pytest.mark.npm
@pytest.mark.parametrize("target", TRANSPORTS, indirect=True)
def test_typescript_sdk_client_receives_tools_list_changed(target: tuple[str, list[str]]) -> None:
    report = _ts_client(target, "--trigger", "test_trigger_tool_change")
    assert report["listChangedCapability"] is True
    assert report["triggerResult"]["isError"] is False
    assert report["listChanged"] >= 1


def _stdio_params(command: list[str], workdir: Path) -> StdioServerParameters:
    return StdioServerParameters(command=command[0], args=command[1:], cwd=workdir)


PY_ERAS = [
    pytest.param("legacy", "2025-11-25", id="handshake-era"),
    pytest.param("auto", "2026-07-28", id="2026-07-28"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "version"), PY_ERAS)
@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_python_sdk_client_lists_and_calls_test_simple_text(
    transport: str, mode: str, version: str, request: pytest.FixtureRequest, stdio_command: list[str], workdir: Path
) -> None:
    server: StdioServerParameters | str
    if transport == "stdio":
        server = _stdio_params(stdio_command, workdir)
    else:
        server = request.getfixturevalue("http_server").url
    async with Client(server, mode=mode) as client:
        assert client.protocol_version == version
        listed = await client.list_tools()
        assert {tool.name for tool in listed.tools} >= FIXTURE_TOOLS
        result = await client.call_tool("test_simple_text", {})
    assert result.is_error is False
    assert result.content == [types.TextContent(type="text", text=SIMPLE_TEXT)]
