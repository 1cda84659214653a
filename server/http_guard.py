"""Strict JSON-RPC framing checks in front of the SDK's HTTP endpoints.

The SDK parses leniently (duplicate keys keep the last value, `NaN` is accepted) and a batch
would reach its dispatcher. Here every POST body is read once under the size cap and checked:
oversized → 413 before parsing; not JSON, duplicate keys, `NaN`/`Infinity`, huge integers, deep
nesting, invalid UTF-8 or lone surrogates → -32700; a batch or a non-object → -32600. Only a body
that passes is replayed, byte for byte, to the SDK.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FramingError", "JsonRpcGuard", "check_jsonrpc_text"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
_MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_PAIRED = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


class FramingError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise FramingError(PARSE_ERROR, f"Parse error: duplicate key {key[:40]!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise FramingError(PARSE_ERROR, f"Parse error: {name} is not valid JSON")


def _depth_exceeds(raw: bytes, limit: int) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def check_jsonrpc_text(raw: bytes) -> Any:
    """Parse one JSON-RPC message strictly.

    Raises:
        FramingError: with the JSON-RPC code and a message naming what is wrong.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FramingError(PARSE_ERROR, "Parse error: body is not valid UTF-8") from None
    if _SURROGATE_ESCAPE.search(raw) and len(_SURROGATE_ESCAPE.findall(raw)) != len(_PAIRED.findall(raw)):
        raise FramingError(PARSE_ERROR, "Parse error: lone UTF-16 surrogate escape")
    # Cheap pre-scan so 200k-deep nesting never reaches the recursive parser.
    if raw.count(b"[") + raw.count(b"{") > _MAX_DEPTH and _depth_exceeds(raw, _MAX_DEPTH):
        raise FramingError(PARSE_ERROR, f"Parse error: nesting deeper than {_MAX_DEPTH}")
    try:
        message = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except FramingError:
        raise
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FramingError(PARSE_ERROR, f"Parse error: {reason}") from None
    if isinstance(message, list):
        raise FramingError(INVALID_REQUEST, "Invalid request: JSON-RPC batches are not supported")
    if not isinstance(message, dict):
        raise FramingError(INVALID_REQUEST, "Invalid request: a JSON-RPC message must be an object")
    return message


def error_body(code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


class JsonRpcGuard:
    """ASGI middleware applying `check_jsonrpc_text` to POSTs on `paths`."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...], max_body_bytes: int) -> None:
        self.app = app
        self.paths = paths
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _respond(send, 413, error_body(INVALID_REQUEST, "Request body too large"))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _respond(send, 413, error_body(INVALID_REQUEST, "Request body too large"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _is_json(scope):
            try:
                check_jsonrpc_text(body)
            except FramingError as exc:
                await _respond(send, 400, error_body(exc.code, exc.message))
                return
        await self.app(scope, _replay(body, receive), send)

    def _guarded(self, path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    # A non-JSON content type is the SDK's to refuse (415/400); we only vet JSON bodies.
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == b"application/json")
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
