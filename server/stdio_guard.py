"""The stdio transport with the same strict framing as HTTP.

The SDK's stdio reader decodes with `errors="replace"` (invalid UTF-8 becomes U+FFFD), parses
leniently (duplicate keys, `NaN`) and drops a line it cannot parse without a word, so a client
waits forever for an answer. Here each line is read as bytes under a length cap and checked by
`check_jsonrpc_text` before the SDK sees it; a refused line is answered with a JSON-RPC error
with `id: null` and the connection keeps serving.

Neither direction costs a thread hand-over per message: the event loop watches stdin and reads
whatever has arrived (a burst of requests is one read), and one writer thread writes everything
queued since its last write in one go, so the loop never blocks on a client slow to read.

While serving, fd 0 reads the null device and fd 1 points at stderr (as the SDK's own transport
does), so a stray `print` or a child process cannot corrupt or steal the wire.
"""

from __future__ import annotations

import os
import sys
import threading
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

_READ_CHUNK = 64 * 1024
# Bytes of serialized messages the wire writer may hold before a sender waits for the reader.
_MAX_PENDING = 1024 * 1024


class _TooLong:
    """Marker for a line over the cap (its bytes were read and dropped)."""


_TOO_LONG = _TooLong()


class LineSplitter:
    """Cuts a byte stream into lines (without their newline); a line over `cap` bytes is refused.

    Never holds more than `cap` bytes of an unfinished line: past that, the rest of the line is
    dropped as it arrives and the line is reported as too long once its newline comes.
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._partial = bytearray()
        self._dropping = False

    def feed(self, chunk: bytes) -> list[bytes | _TooLong]:
        """The lines `chunk` completes, in order."""
        pieces = chunk.split(b"\n")
        tail = pieces.pop()
        lines: list[bytes | _TooLong] = []
        for piece in pieces:
            if self._dropping:
                self._dropping = False
                lines.append(_TOO_LONG)
                continue
            if self._partial:
                self._partial += piece
                piece = bytes(self._partial)
                self._partial.clear()
            lines.append(piece if len(piece) <= self._cap else _TOO_LONG)
        if tail and not self._dropping:
            self._partial += tail
            if len(self._partial) > self._cap:
                self._partial.clear()
                self._dropping = True
        return lines

    def end(self) -> list[bytes | _TooLong]:
        """The unterminated last line, if the input ended in one."""
        if self._dropping:
            self._dropping = False
            return [_TOO_LONG]
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            return [line]
        return []


class _Reader:
    """Reads whatever bytes have arrived, as the OS hands them over (`b""` at end of input).

    A pipe, socket or terminal is watched by the event loop, so a burst of requests costs one
    read and no thread; anything the loop cannot watch (a regular file, `/dev/null`) is read in
    a worker thread. The stream must not have been read from before: its buffer is bypassed.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._fd: int | None = None
        if os.name == "posix":
            with suppress(AttributeError, OSError, ValueError):
                self._fd = stream.fileno()

    async def read(self) -> bytes:
        while self._fd is not None:
            try:
                await anyio.wait_readable(self._fd)
            except OSError:  # not a file the event loop can watch
                self._fd = None
                break
            with suppress(BlockingIOError):  # a wake-up with nothing to read after all
                return os.read(self._fd, _READ_CHUNK)
        read = getattr(self._stream, "read1", self._stream.read)
        # abandon_on_cancel: a blocked read must not hold up shutdown; the thread is a daemon.
        chunk: bytes = await anyio.to_thread.run_sync(read, _READ_CHUNK, abandon_on_cancel=True)
        return chunk


class _WireWriter:
    """Writes the wire from a thread of its own, so the event loop never blocks on a slow reader.

    Messages queued while a write is under way go out together in the next write: under load
    one write, and one wake-up of the thread, carries many messages. Past `max_pending` queued
    bytes the sender waits for the reader to catch up (`wait_for_room`).
    """

    def __init__(self, stream: BinaryIO, max_pending: int) -> None:
        self._stream = stream
        self._max_pending = max_pending
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._closing = False
        self._failure: OSError | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="toolkiln-stdio-out", daemon=True)
        self._thread.start()

    def send(self, data: bytes) -> bool:
        """Queue `data` for the wire; whether the sender must now wait for room.

        Raises:
            OSError: an earlier write failed (the reader has gone).
        """
        with self._changed:
            if self._failure is not None:
                raise self._failure
            self._pending.append(data)
            self._pending_bytes += len(data)
            if len(self._pending) == 1:
                self._changed.notify_all()
            return self._pending_bytes > self._max_pending

    def wait_for_room(self) -> None:
        """Block until the queued bytes are back under the limit (in a worker thread)."""
        with self._changed:
            while self._pending_bytes > self._max_pending and self._failure is None:
                self._changed.wait()

    def stop(self) -> None:
        """Let the thread end once it has written what is queued, without waiting for it."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()

    def close(self) -> None:
        """Write what is queued, then stop the thread (blocking).

        Raises:
            OSError: a write failed.
        """
        self.stop()
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closing:
                    self._changed.wait()
                if not self._pending:
                    return
                chunks, self._pending, self._pending_bytes = self._pending, [], 0
                self._changed.notify_all()  # senders waiting for room
            try:
                self._stream.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                self._stream.flush()
            except OSError as exc:
                with self._changed:
                    self._failure = exc
                    self._pending, self._pending_bytes = [], 0
                    self._changed.notify_all()
                return


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
    reader = _Reader(stdin)
    lines = LineSplitter(cap)
    async with to_server, to_peer:
        while True:
            chunk = await reader.read()
            for line in lines.feed(chunk) if chunk else lines.end():
                vetted = too_long if isinstance(line, _TooLong) else vet_line(line)
                if vetted is None:
                    continue
                with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    if isinstance(vetted, FramingError):
                        log.info("stdio_message_rejected", code=vetted.code, reason=vetted.message)
                        await to_peer.send(_rejection(vetted))
                    else:
                        await to_server.send(vetted)
            if not chunk:
                return


async def _pump_out(stdout: BinaryIO, from_server: MemoryObjectReceiveStream[SessionMessage]) -> None:
    # The one writer of the wire: server messages and our rejections never interleave mid-line.
    wire = _WireWriter(stdout, _MAX_PENDING)
    try:
        async with from_server:
            async for message in from_server:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
                if wire.send(data):
                    await anyio.to_thread.run_sync(wire.wait_for_room, abandon_on_cancel=True)
    except BaseException:
        wire.stop()
        raise
    # Everything the server sent reaches the wire before the transport returns.
    await anyio.to_thread.run_sync(wire.close)


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
