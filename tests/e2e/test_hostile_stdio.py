"""Hostile lines written straight into `toolkiln serve`'s stdin (THREATS P1–P4, A1).

One server process serves the whole module, so every refusal is also proof that the same
process, in the same session, still answers the next normal call.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.raw import SIMPLE_TEXT, StdioPeer, call_body

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
DEFAULT_CAP = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def peer(stdio_command: list[str], workdir: Path) -> Iterator[StdioPeer]:
    server = StdioPeer(stdio_command, workdir)
    server.handshake()
    yield server
    assert server.close() == 0


def _deep(depth: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"x":' + b"[" * depth + b"]" * depth + b"}}"


HOSTILE_LINES = [
    # THREATS P1
    pytest.param(b"hello", PARSE_ERROR, id="not-json"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,', PARSE_ERROR, id="truncated"),
    pytest.param(b"42", INVALID_REQUEST, id="bare-number"),
    pytest.param(b'"x"', INVALID_REQUEST, id="bare-string"),
    pytest.param(b"{}", INVALID_REQUEST, id="empty-object"),
    # THREATS P2
    pytest.param(b'{"jsonrpc":"1.0","id":7,"method":"tools/list"}', INVALID_REQUEST, id="jsonrpc-1.0"),
    pytest.param(b'{"id":7,"method":"tools/list"}', INVALID_REQUEST, id="jsonrpc-missing"),
    pytest.param(b'{"jsonrpc":"2.0","id":{},"method":"tools/list"}', INVALID_REQUEST, id="id-object"),
    pytest.param(b'{"jsonrpc":"2.0","id":[7],"method":"tools/list"}', INVALID_REQUEST, id="id-array"),
    pytest.param(b'{"jsonrpc":"2.0","id":false,"method":"tools/list"}', INVALID_REQUEST, id="id-bool"),
    pytest.param(b'{"jsonrpc":"2.0","id":7.5,"method":"tools/list"}', INVALID_REQUEST, id="id-float"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":7}', INVALID_REQUEST, id="method-int"),
    # THREATS P3
    pytest.param(json.dumps([call_body(77), call_body(78)]).encode(), INVALID_REQUEST, id="batch-of-calls"),
    # THREATS P4
    pytest.param(_deep(200_000), PARSE_ERROR, id="array-nesting-200k"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"tools/list"}', PARSE_ERROR, id="id-5000-digits"
    ),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":NaN}}', PARSE_ERROR, id="nan"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":Infinity}}', PARSE_ERROR, id="infinity"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":1e999}}', PARSE_ERROR, id="overflow-float"
    ),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call"}', PARSE_ERROR, id="dup-keys"),
    # The SDK's own reader would replace these bytes with U+FFFD and carry on.
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\xff\xfe"}}', PARSE_ERROR, id="bad-utf8"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\\ud800"}}', PARSE_ERROR, id="lone-surrogate"
    ),
]


@pytest.mark.parametrize(("line", "code"), HOSTILE_LINES)
def test_hostile_stdio_line_is_answered_with_null_id_and_the_next_call_is_served(
    peer: StdioPeer, line: bytes, code: int
) -> None:
    peer.send_raw(line + b"\n")
    reply = peer.receive()
    assert reply == {"jsonrpc": "2.0", "id": None, "error": reply["error"]}
    assert reply["error"]["code"] == code
    # Had a batch element run, its answer (id 77/78) would arrive before this one.
    peer.assert_still_serves()


def test_line_longer_than_the_body_cap_is_refused_without_buffering_it(peer: StdioPeer) -> None:
    """THREATS P4: the same 4 MiB cap as an HTTP body; the rest of the line is drained, not kept."""
    peer.send_raw(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"pad":"' + b"a" * (DEFAULT_CAP + 1024))
    peer.send_raw(b'"}}\n')
    reply = peer.receive()
    assert reply["id"] is None
    assert reply["error"]["code"] == INVALID_REQUEST
    assert "longer than" in reply["error"]["message"]
    peer.assert_still_serves()


def test_crlf_line_endings_and_blank_lines_are_tolerated(peer: StdioPeer) -> None:
    peer.send_raw(b"\n\r\n   \n" + json.dumps(call_body(51)).encode() + b"\r\n")
    reply = peer.receive()
    assert reply["id"] == 51
    assert reply["result"]["content"] == [{"type": "text", "text": SIMPLE_TEXT}]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"name": 123}, id="name-int"),
        pytest.param({"name": "test_simple_text", "arguments": "str"}, id="arguments-string"),
    ],
)
def test_tools_call_with_malformed_params_is_invalid_params_for_that_request(
    peer: StdioPeer, params: dict[str, object]
) -> None:
    """THREATS P2."""
    peer.send({"jsonrpc": "2.0", "id": 61, "method": "tools/call", "params": params})
    reply = peer.receive()
    assert reply["id"] == 61
    assert reply["error"]["code"] == INVALID_PARAMS
    peer.assert_still_serves()


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"surprise": 1}, id="unknown-argument"),
        pytest.param({"surprise": None}, id="unknown-null-argument"),
        pytest.param({"__proto__": {"admin": True}}, id="prototype-key"),
    ],
)
def test_unknown_argument_over_stdio_is_a_tool_error_naming_it(peer: StdioPeer, arguments: dict[str, object]) -> None:
    """THREATS A1."""
    peer.send(call_body(71, arguments=arguments))
    reply = peer.receive()
    assert reply["id"] == 71
    assert reply["result"]["isError"] is True
    name = next(iter(arguments))
    assert f"unknown argument '{name}'" in reply["result"]["content"][0]["text"]
    peer.assert_still_serves()


_NOISY_SERVER = """
import sys, anyio
from server.config import ServerSettings, Settings
from server.logs import configure_logging
from server.runtime import Runtime
from server.transports import serve
from tools.model import Tool, ToolResult

async def noisy(arguments, context):
    print('{"jsonrpc":"2.0","id":4242,"result":{"forged":true}}', flush=True)
    sys.stdout.buffer.write(b"not json at all\\n")
    sys.stdout.flush()
    return ToolResult.text("noisy done")

configure_logging()
runtime = Runtime(Settings(server=ServerSettings(data_dir=sys.argv[1])))
runtime.registry.add(Tool(name="noisy", description="prints to stdout", input_schema={"type": "object"},
                          executor=noisy, source="e2e"))
anyio.run(serve, runtime, "stdio")
"""


def test_a_tool_printing_to_stdout_cannot_forge_or_corrupt_the_wire(tmp_path: Path) -> None:
    """While serving, fd 1 points at stderr: only the transport writes JSON-RPC to the client."""
    peer = StdioPeer([sys.executable, "-c", _NOISY_SERVER, str(tmp_path)], tmp_path)
    try:
        peer.handshake()
        peer.send(call_body(5, name="noisy", arguments={}))
        reply = peer.receive()
        assert reply["id"] == 5
        assert reply["result"]["content"] == [{"type": "text", "text": "noisy done"}]
        peer.send({"jsonrpc": "2.0", "id": 6, "method": "tools/list"})
        assert peer.receive()["id"] == 6
    finally:
        assert peer.close() == 0
