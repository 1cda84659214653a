"""The stdio transport with the same strict framing as HTTP.

The SDK's stdio reader decodes with `errors="replace"` (invalid UTF-8 becomes U+FFFD), parses
leniently (duplicate keys, `NaN`) and drops a line it cannot parse without a word, so a client
waits forever for an answer. Here each line is read as bytes under a length cap and checked by
`check_jsonrpc_text` before the SDK sees it; a refused line is answered with a JSON-RPC error
with `id: null` and the connection keeps serving.

While serving, fd 0 reads the null device and fd 1 points at stderr (as the SDK's own transport
does), so a stray `print` or a child process cannot corrupt or steal the wire.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import BinaryIO

import anyio
import mcp_types as types
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from server.http_guard import INVALID_REQUEST, FramingError, check_jsonrpc_text

__all__ = ["guarded_stdio_server", "vet_line"]

log = structlog.get_logger("toolkiln.stdio")

_DRAIN_CHUNK = 64 * 1024


class _TooLong:
    """Marker for a line over the cap (its bytes were read and dropped)."""


_TOO_LONG = _TooLong()


def _read_line(stream: BinaryIO, cap: int) -> bytes | _TooLong:
    """One line including its newline, `b""` at EOF; a line over `cap` is drained, not kept."""
    line = stream.readline(cap + 1)
    if len(line) <= cap or line.endswith(b"\n"):
        return line
    while True:
        rest = stream.readline(_DRAIN_CHUNK)
        if not rest or rest.endswith(b"\n"):
            return _TOO_LONG


def _write_line(stream: BinaryIO, data: bytes) -> None:
    stream.write(data)
    stream.flush()


def vet_line(line: bytes) -> SessionMessage | FramingError | None:
    """The message on one stdio line, why it is refused, or `None` for a blank line."""
    body = line.rstrip(b"\r\n")
    if not body.strip():
        return None
    try:
        checked = check_jsonrpc_text(body)
    except FramingError as exc:
        return exc
    try:
        message = types.jsonrpc_message_adapter.validate_python(checked, by_name=False)
    except ValidationError:
        return FramingError(INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 message")
    return SessionMessage(message)


def _rejection(error: FramingError) -> SessionMessage:
    # id null: the id of a refused message cannot be trusted (JSON-RPC 2.0, section 5).
    data = types.ErrorData(code=error.code, message=error.message)
    return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=None, error=data))


async def _pump_in(
    stdin: BinaryIO,
    cap: int,
    to_server: MemoryObjectSendStream[SessionMessage | Exception],
    to_peer: MemoryObjectSendStream[SessionMessage],
) -> None:
    too_long = FramingError(INVALID_REQUEST, f"Invalid request: message longer than {cap} bytes")
    async with to_server, to_peer:
        while True:
            # abandon_on_cancel: a blocked read must not hold up shutdown; the thread is a daemon.
            line = await anyio.to_thread.run_sync(_read_line, stdin, cap, abandon_on_cancel=True)
            if line == b"":
                return
            vetted = too_long if isinstance(line, _TooLong) else vet_line(line)
            if vetted is None:
                continue
            with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                if isinstance(vetted, FramingError):
                    log.info("stdio_message_rejected", code=vetted.code, reason=vetted.message)
                    await to_peer.send(_rejection(vetted))
                else:
                    await to_server.send(vetted)


async def _pump_out(stdout: BinaryIO, from_server: MemoryObjectReceiveStream[SessionMessage]) -> None:
    # The one writer of the wire: server messages and our rejections never interleave mid-line.
    async with from_server:
        async for message in from_server:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
            await anyio.to_thread.run_sync(_write_line, stdout, data)


def _claim_std_streams() -> tuple[BinaryIO, BinaryIO, Callable[[], None]]:
    """Private duplicates of fds 0/1 for the wire; fds 0/1 themselves diverted until restored."""
    sys.stdout.flush()
    try:
        wire_in, wire_out = os.dup(0), os.dup(1)
    except OSError:
        return sys.stdin.buffer, sys.stdout.buffer, lambda: None
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)

    def restore() -> None:
        sys.stdout.flush()
        os.dup2(wire_in, 0)
        os.dup2(wire_out, 1)

    # closefd=False: an abandoned reader thread may still block on wire_in after we return.
    return os.fdopen(wire_in, "rb", closefd=False), os.fdopen(wire_out, "wb", closefd=False), restore


@asynccontextmanager
async def guarded_stdio_server(
    *, max_line_bytes: int, streams: tuple[BinaryIO, BinaryIO] | None = None
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """Serve newline-delimited JSON-RPC on `streams` (default: the process's stdin and stdout).

    Yields the (read, write) stream pair `Server.run` expects.
    """
    restore: Callable[[], None] | None = None
    if streams is None:
        stdin, stdout, restore = _claim_std_streams()
    else:
        stdin, stdout = streams
    to_server, from_peer = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    to_peer, from_server = anyio.create_memory_object_stream[SessionMessage](0)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_in, stdin, max_line_bytes, to_server, to_peer.clone())
            tg.start_soon(_pump_out, stdout, from_server)
            yield from_peer, to_peer
    finally:
        if restore is not None:
            restore()
