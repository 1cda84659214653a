"""Upstream responses into tool results, read under a cap on *decoded* bytes (THREATS S6, S8).

We decode `Content-Encoding` ourselves with a bounded `max_length`, rather than letting httpx
inflate each network chunk whole: one 64 KiB gzip chunk can expand to ~64 MiB before any cap
could look at it. Memory stays at most one cap plus one network chunk, whatever the upstream sends.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from typing import Any

import httpx
import mcp_types as types

from tools.errors import UpstreamFailure
from tools.model import ToolResult
from tools.openapi.errors import ResponseTooLarge, UpstreamError

__all__ = ["read_capped", "to_tool_result"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")
_TEXT_TYPES = ("application/xml", "application/x-www-form-urlencoded", "application/javascript", "application/yaml")


class _Identity:
    def feed(self, data: bytes, out: bytearray, limit: int) -> None:
        out += data
        if len(out) > limit:
            raise ResponseTooLarge(limit)

    def flush(self, out: bytearray, limit: int) -> None:
        return None


class _Inflate:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), output bounded per step."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._gzip = encoding in ("gzip", "x-gzip")
        self._d = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes, out: bytearray, limit: int) -> None:
        try:
            self._feed(data, out, limit)
        except zlib.error:
            if self._gzip or self._started:
                raise UpstreamFailure(f"Upstream sent a corrupt {self.encoding} body") from None
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)
            self._started = True
            try:
                self._feed(data, out, limit)
            except zlib.error:
                raise UpstreamFailure(f"Upstream sent a corrupt {self.encoding} body") from None

    def _feed(self, data: bytes, out: bytearray, limit: int) -> None:
        decompressor = self._d
        while data and not decompressor.eof:
            out += decompressor.decompress(data, limit - len(out) + 1)
            self._started = True
            if len(out) > limit:
                raise ResponseTooLarge(limit)
            data = decompressor.unconsumed_tail

    def flush(self, out: bytearray, limit: int) -> None:
        try:
            out += self._d.flush(limit - len(out) + 1)
        except zlib.error:
            raise UpstreamFailure(f"Upstream sent a corrupt {self.encoding} body") from None
        if len(out) > limit:
            raise ResponseTooLarge(limit)


def _decoder(response: httpx.Response) -> _Identity | _Inflate:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return _Identity()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflate(encoding)
    raise UpstreamFailure(f"Upstream used an unsupported Content-Encoding '{encoding[:40]}'")


def _check_declared(declared: int, limit: int) -> None:
    if declared > limit:
        raise ResponseTooLarge(limit)


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The decoded body, read chunk by chunk and abandoned the moment it passes `limit` bytes.

    Raises:
        ResponseTooLarge: the declared length or the decoded bytes exceed `limit`.
        UpstreamFailure: unsupported or corrupt content encoding.
    """
    decoder = _decoder(response)
    declared = response.headers.get("content-length")
    # A HEAD answer declares the length of a body it never sends.
    has_body = response.request.method != "HEAD" and response.status_code not in (204, 304)
    if isinstance(decoder, _Identity) and has_body and declared is not None and declared.isdigit():
        _check_declared(int(declared), limit)
    out = bytearray()
    async for chunk in response.aiter_raw():
        decoder.feed(chunk, out, limit)
    decoder.flush(out, limit)
    return bytes(out)


def _media(response: httpx.Response) -> tuple[str, str]:
    content_type = response.headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return media.strip().lower(), charset


def _text(body: bytes, charset: str) -> str:
    try:
        text = body.decode(charset, "replace")
    except LookupError:
        text = body.decode("utf-8", "replace")
    return _CONTROL.sub("", text)


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _is_text(media: str) -> bool:
    return media.startswith("text/") or media.endswith("+xml") or media in _TEXT_TYPES


def to_tool_result(response: httpx.Response, body: bytes, *, max_error_chars: int) -> ToolResult:
    """JSON → `structuredContent` (objects) plus the JSON text; text → text; other media → blocks.

    Raises:
        UpstreamError: the status is not 2xx; the message carries at most `max_error_chars` of body.
    """
    status = response.status_code
    media, charset = _media(response)
    if not 200 <= status < 300:
        excerpt = _text(body[: max_error_chars * 4], charset)[:max_error_chars].strip()
        raise UpstreamError(status, response.reason_phrase, excerpt)
    if not body:
        return ToolResult.text(f"HTTP {status} (no content)")
    if _is_json(media) or (not media and body[:1] in (b"{", b"[")):
        return _json_result(body, charset)
    if _is_text(media) or not media:
        return ToolResult.text(_text(body, charset))
    data = base64.b64encode(body).decode("ascii")
    if media.startswith("image/"):
        return ToolResult(content=[types.ImageContent(type="image", data=data, mime_type=media)])
    if media.startswith("audio/"):
        return ToolResult(content=[types.AudioContent(type="audio", data=data, mime_type=media)])
    # The query may carry injected credentials; the resource is named by its path alone.
    uri = str(response.request.url.copy_with(query=None, fragment=None))
    blob = types.BlobResourceContents(uri=uri, mime_type=media, blob=data)
    return ToolResult(content=[types.EmbeddedResource(type="resource", resource=blob)])


def _json_result(body: bytes, charset: str) -> ToolResult:
    text = body.decode(charset if charset.lower() in ("utf-8", "utf8") else "utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return ToolResult.text(_CONTROL.sub("", text))
    structured = parsed if isinstance(parsed, dict) else None
    return ToolResult(content=[types.TextContent(type="text", text=text)], structured=structured)
