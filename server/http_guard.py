"""Strict JSON-RPC framing checks in front of the SDK's HTTP endpoints.

The SDK parses leniently (duplicate keys keep the last value, `NaN` is accepted, an `id` of
`1.5` or `{}` silently turns a request into a notification) and a batch would reach its
dispatcher. Here every request on a guarded path is checked in this order:

1. Host (421) and Origin (403), with the SDK's own rules, so a cross-site or rebound request is
   refused the same way whatever its body or content type;
2. a POST must be `application/json` (400);
3. the body is read once under the size cap: oversized → 413 before any parsing;
4. `check_jsonrpc_text`: not JSON, duplicate keys, `NaN`/`Infinity` (also spelled `1e999`),
   huge integers, deep nesting, invalid UTF-8 or lone surrogates → -32700; a batch, a bare
   value or a malformed envelope → -32600.

Only a body that passes is replayed, byte for byte, to the SDK. The stdio transport applies the
same `check_jsonrpc_text` to each line (server/stdio_guard.py).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["INVALID_REQUEST", "PARSE_ERROR", "FramingError", "JsonRpcGuard", "check_jsonrpc_text", "error_body"]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
_MAX_DEPTH = 64
# Far beyond any 64-bit id or counter, far below the interpreter's 4,300-digit conversion limit.
_MAX_INT_CHARS = 64
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")
_PAIRED = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


class FramingError(Exception):
    """A message refused before the SDK sees it; `code` is the JSON-RPC error code."""

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


def _bounded_int(digits: str) -> int:
    if len(digits) > _MAX_INT_CHARS:
        raise FramingError(PARSE_ERROR, f"Parse error: integer longer than {_MAX_INT_CHARS} characters")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # `1e999` parses to infinity: the same value NaN/Infinity smuggling would produce.
        raise FramingError(PARSE_ERROR, "Parse error: number out of range")
    return value


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


def _is_id(value: object, *, nullable: bool) -> bool:
    # bool is an int subclass, and a float id such as 1.0 would be coerced by the SDK to 1.
    return (isinstance(value, str | int) and not isinstance(value, bool)) or (nullable and value is None)


def _envelope_problem(message: dict[str, Any]) -> str | None:
    """What makes `message` no JSON-RPC 2.0 request, notification or response, if anything."""
    if message.get("jsonrpc") != "2.0":
        return "'jsonrpc' must be \"2.0\""
    if "method" in message:
        if not isinstance(message["method"], str):
            return "'method' must be a string"
        if "id" in message and not _is_id(message["id"], nullable=False):
            return "'id' must be a string or an integer"
        if "params" in message and not isinstance(message["params"], dict):
            return "'params' must be an object"
        if "result" in message or "error" in message:
            return "a request cannot carry 'result' or 'error'"
        return None
    if ("result" in message) == ("error" in message):
        return "a message needs 'method', or exactly one of 'result' and 'error'"
    if "id" not in message or not _is_id(message["id"], nullable="error" in message):
        return "a response needs the string or integer 'id' of its request"
    if "result" in message and not isinstance(message["result"], dict):
        return "'result' must be an object"
    error = message.get("error")
    if "error" in message and not (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and not isinstance(error.get("code"), bool)
        and isinstance(error.get("message"), str)
    ):
        return "'error' must be an object with an integer 'code' and a string 'message'"
    return None


def check_jsonrpc_text(raw: bytes) -> dict[str, Any]:
    """Parse one JSON-RPC message strictly and check its envelope.

    Raises:
        FramingError: with the JSON-RPC code (-32700 parse, -32600 invalid request) and a
            message naming what is wrong, never echoing more than a few characters of input.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FramingError(PARSE_ERROR, "Parse error: not valid UTF-8") from None
    if _SURROGATE_ESCAPE.search(raw) and len(_SURROGATE_ESCAPE.findall(raw)) != len(_PAIRED.findall(raw)):
        raise FramingError(PARSE_ERROR, "Parse error: lone UTF-16 surrogate escape")
    # Cheap pre-scan so 200k-deep nesting never reaches the recursive parser.
    if raw.count(b"[") + raw.count(b"{") > _MAX_DEPTH and _depth_exceeds(raw, _MAX_DEPTH):
        raise FramingError(PARSE_ERROR, f"Parse error: nesting deeper than {_MAX_DEPTH}")
    try:
        message = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except FramingError:
        raise
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FramingError(PARSE_ERROR, f"Parse error: {reason}") from None
    if isinstance(message, list):
        raise FramingError(INVALID_REQUEST, "Invalid request: JSON-RPC batches are not supported")
    if not isinstance(message, dict):
        raise FramingError(INVALID_REQUEST, "Invalid request: a JSON-RPC message must be an object")
    problem = _envelope_problem(message)
    if problem is not None:
        raise FramingError(INVALID_REQUEST, f"Invalid request: {problem}")
    return message


def error_body(code: int, message: str) -> bytes:
    """A JSON-RPC error with `id: null`: a refused message's id cannot be trusted."""
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


class JsonRpcGuard:
    """ASGI middleware: Host/Origin, content type, size cap and `check_jsonrpc_text` on `paths`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        max_body_bytes: int,
        security: TransportSecuritySettings,
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_body_bytes = max_body_bytes
        self._security = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        # Origin and Host first: a browser or a rebound name must get 403/421 whatever it sends.
        refused = await self._security.validate_request(Request(scope), is_post=False)
        if refused is not None:
            await refused(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not _is_json(scope):
            body = error_body(INVALID_REQUEST, "Invalid request: Content-Type must be application/json")
            await _respond(send, 400, body)
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
    # Exactly application/json (parameters such as charset aside): the SDK's SSE endpoint only
    # checks the prefix, so `application/jsonx` would otherwise reach its lenient parser.
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
