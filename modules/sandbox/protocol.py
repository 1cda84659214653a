"""The server's end of a worker's socket: length-prefixed JSON frames, read with a hard size cap.

Everything that arrives is written by hostile code (a module can write to its socket directly), so
a frame is bounded before it is read and must decode to a JSON object; anything else ends the
worker (`FrameRejected`).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

__all__ = ["FrameRejected", "encode", "read_frame"]

_HEADER = struct.Struct(">I")


class FrameRejected(Exception):
    """The worker sent something that is not a frame we accept; `reason` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(data)) + data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> dict[str, Any] | None:
    """The next frame, or None at a clean end of stream.

    Raises:
        FrameRejected: oversized, truncated, not UTF-8 JSON, or not an object.
    """
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameRejected("truncated frame") from exc
        return None
    (size,) = _HEADER.unpack(header)
    if size > max_bytes:
        raise FrameRejected(f"frame of {size} bytes exceeds the {max_bytes} byte cap")
    try:
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameRejected("truncated frame") from exc
    try:
        message = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise FrameRejected("frame is not JSON") from exc
    if not isinstance(message, dict):
        raise FrameRejected("frame is not a JSON object")
    return message
