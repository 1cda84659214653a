"""Raw JSON-RPC over HTTP (httpx) and over a stdio pipe, for feeding servers hostile bytes.

No MCP client library here on purpose: hostile inputs must reach the server exactly as written.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx

SIMPLE_TEXT = "This is a simple text response for testing."
HANDSHAKE_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"
ACCEPT = "application/json, text/event-stream"

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "raw-e2e", "version": "1.0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def initialize_body(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw-e2e", "version": "1.0"},
        },
    }


def call_body(request_id: int | str, name: str = "test_simple_text", arguments: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def rpc_payload(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message in a response, whether sent as JSON or as one SSE `data:` event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                payload: dict[str, Any] = json.loads(line[5:])
                return payload
        raise AssertionError(f"no data event in {response.text[:200]!r}")
    message: dict[str, Any] = response.json()
    return message


def open_session(client: httpx.Client, url: str) -> dict[str, str]:
    """Handshake-era session over raw HTTP; returns the headers every later POST carries."""
    headers = {"content-type": "application/json", "accept": ACCEPT}
    response = client.post(url, headers=headers, json=initialize_body())
    assert response.status_code == 200, response.text
    session = {**headers, "mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    notified = client.post(url, headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert notified.status_code == 202, notified.text
    return session


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": ACCEPT,
        "mcp-protocol-version": MODERN_VERSION,
        "mcp-method": method,
    }
    if name is not None:
        headers["mcp-name"] = name
    return headers


def assert_http_still_serves(client: httpx.Client, url: str, session: dict[str, str]) -> None:
    """A normal call answers with the fixture text, in the handshake session and statelessly (2026)."""
    response = client.post(url, headers=session, json=call_body(4242))
    assert response.status_code == 200, response.text
    message = rpc_payload(response)
    assert message["id"] == 4242
    assert message["result"]["content"] == [{"type": "text", "text": SIMPLE_TEXT}]
    modern = call_body(4343) | {"params": {"name": "test_simple_text", "arguments": {}, "_meta": MODERN_META}}
    response = client.post(url, headers=modern_headers("tools/call", "test_simple_text"), json=modern)
    assert response.status_code == 200, response.text
    assert rpc_payload(response)["result"]["content"] == [{"type": "text", "text": SIMPLE_TEXT}]


class StdioPeer:
    """A `toolkiln serve` subprocess spoken to line by line; replies are read with a deadline."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (the caller decides about the trailing newline)."""
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        line = self._lines.get(timeout=timeout)
        assert line, "the server closed stdout"
        message: dict[str, Any] = json.loads(line)
        return message

    def handshake(self) -> None:
        self.send(initialize_body())
        reply = self.receive()
        assert reply["id"] == 1, reply
        assert "result" in reply, reply
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def assert_still_serves(self, request_id: int = 4242) -> None:
        self.send(call_body(request_id))
        reply = self.receive()
        assert reply["id"] == request_id, reply
        assert reply["result"]["content"] == [{"type": "text", "text": SIMPLE_TEXT}]

    def close(self) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)
            self._reader.join(timeout=5)
            self.process.stdout.close()
        return code
