"""Hostile tool calls against a server whose tool counts its executions (THREATS A1, A2, P3).

The server runs in-process on a loopback port so the test can see that a refused call never
reached the executor; the requests are raw httpx, exactly as written here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.inprocess import CountingTool, make_runtime, serve_in_process
from tests.e2e.raw import ACCEPT, MODERN_META, call_body, initialize_body, modern_headers, rpc_payload

pytestmark = pytest.mark.anyio

INVALID_REQUEST = -32600


@dataclass
class Served:
    url: str
    http: httpx.AsyncClient
    session: dict[str, str]
    tool: CountingTool

    async def call(self, arguments: Any, request_id: int = 11) -> dict[str, Any]:
        body = call_body(request_id, self.tool.name, arguments)
        response = await self.http.post(self.url, headers=self.session, json=body)
        message = rpc_payload(response)
        assert message["id"] == request_id
        return message

    async def call_modern(self, arguments: Any, request_id: int = 12) -> dict[str, Any]:
        body = call_body(request_id, self.tool.name, arguments)
        body["params"]["_meta"] = MODERN_META
        response = await self.http.post(self.url, headers=modern_headers("tools/call", self.tool.name), json=body)
        message = rpc_payload(response)
        assert message["id"] == request_id
        return message

    async def assert_still_serves(self) -> None:
        message = await self.call({"count": 1}, request_id=4242)
        assert message["result"] == {"content": [{"type": "text", "text": "count=1"}], "isError": False}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    runtime = make_runtime(tmp_path)
    tool = CountingTool()
    runtime.registry.add(tool.tool())
    async with serve_in_process(runtime) as url, httpx.AsyncClient(timeout=30) as http:
        headers = {"content-type": "application/json", "accept": ACCEPT}
        response = await http.post(url, headers=headers, json=initialize_body())
        session = {
            **headers,
            "mcp-session-id": response.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        await http.post(url, headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield Served(url=url, http=http, session=session, tool=tool)


REFUSED_ARGUMENTS = [
    # THREATS A1: arguments the schema does not name.
    pytest.param({"count": 1, "extra": 1}, "unknown argument 'extra'", id="extra-property"),
    pytest.param({"count": 1, "Count": 2}, "unknown argument 'Count'", id="case-variant-property"),
    pytest.param({"count": 1, "api_key": "x"}, "unknown argument 'api_key'", id="credential-shaped-property"),
    # THREATS A2: type confusion, never coerced.
    pytest.param({"count": "1"}, "arguments.count: expected integer, got string", id="string-for-integer"),
    pytest.param({"count": True}, "arguments.count: expected integer, got boolean", id="bool-for-integer"),
    pytest.param({"count": 1.5}, "arguments.count: expected integer, got number", id="fraction-for-integer"),
    pytest.param({"count": [1]}, "arguments.count: expected integer, got array", id="array-for-integer"),
    pytest.param({"count": 1, "flag": "true"}, "arguments.flag: expected boolean, got string", id="string-true"),
    pytest.param({"count": 1, "flag": 1}, "arguments.flag: expected boolean, got number", id="one-for-boolean"),
    pytest.param({"count": 1, "label": 5}, "arguments.label: expected string, got number", id="number-for-string"),
    # null is not "missing": a required or non-nullable argument given null is refused.
    pytest.param({"count": None}, "arguments.count: expected integer, got null", id="null-for-required"),
    pytest.param({"count": 1, "label": None}, "arguments.label: expected string, got null", id="null-for-optional"),
    pytest.param({}, "'count' is a required property", id="required-missing"),
]


@pytest.mark.parametrize(("arguments", "problem"), REFUSED_ARGUMENTS)
async def test_bad_arguments_are_a_tool_error_naming_the_argument_and_never_execute(
    served: Served, arguments: dict[str, Any], problem: str
) -> None:
    for message in (await served.call(arguments), await served.call_modern(arguments)):
        result = message["result"]
        assert result["isError"] is True
        assert problem in result["content"][0]["text"]
    assert served.tool.calls == []
    await served.assert_still_serves()


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"count": 3}, id="optional-missing"),
        pytest.param({"count": 3, "note": None}, id="nullable-given-null"),
        pytest.param({"count": 3, "flag": False, "label": "", "note": "n"}, id="all-given"),
    ],
)
async def test_valid_arguments_reach_the_executor_exactly_as_sent(served: Served, arguments: dict[str, Any]) -> None:
    message = await served.call(arguments)
    assert message["result"]["isError"] is False
    assert served.tool.calls == [arguments]


BATCHES = [
    pytest.param([call_body(1, "typed_echo", {"count": 1}), call_body(2, "typed_echo", {"count": 2})], id="two-calls"),
    pytest.param([call_body(1, "typed_echo", {"count": 1})], id="single-call"),
    pytest.param([initialize_body(5), call_body(6, "typed_echo", {"count": 1})], id="initialize-then-call"),
    pytest.param(
        [{"jsonrpc": "2.0", "method": "notifications/initialized"}, call_body(7, "typed_echo", {"count": 1})],
        id="notification-then-call",
    ),
]


@pytest.mark.parametrize("batch", BATCHES)
async def test_a_batch_is_rejected_whole_and_no_element_executes(served: Served, batch: list[dict[str, Any]]) -> None:
    """THREATS P3, in the handshake session and statelessly (2026-07-28 headers)."""
    for headers in (served.session, modern_headers("tools/call", "typed_echo")):
        response = await served.http.post(served.url, headers=headers, content=json.dumps(batch).encode())
        assert response.status_code == 400
        assert response.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": INVALID_REQUEST, "message": "Invalid request: JSON-RPC batches are not supported"},
        }
    assert served.tool.calls == []
    await served.assert_still_serves()
