"""The stdio transport's reading and writing: lines cut from arbitrary chunks, one writer thread.

The framing refusals themselves are tested end to end against `toolkiln serve`
(tests/e2e/test_hostile_stdio.py); here the pieces under them, with real pipes and files.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import BinaryIO

import anyio
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from server.stdio_guard import _TOO_LONG, LineSplitter, _WireWriter, guarded_stdio_server

pytestmark = pytest.mark.anyio


def test_lines_are_cut_at_newlines_whatever_the_chunks() -> None:
    lines = LineSplitter(cap=100)
    assert lines.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert lines.feed(b":2}\r") == []
    assert lines.feed(b"\n\n{") == [b'{"b":2}\r', b""]
    assert lines.feed(b"}\n") == [b"{}"]
    assert lines.end() == []


def test_a_line_of_exactly_the_cap_passes_and_one_byte_more_is_refused() -> None:
    lines = LineSplitter(cap=8)
    assert lines.feed(b"12345678\n123456789\n") == [b"12345678", _TOO_LONG]
    # Split over chunks, the partial line is checked as it grows and when it ends.
    assert lines.feed(b"1234") == []
    assert lines.feed(b"5678\n1234") == [b"12345678"]
    assert lines.feed(b"56789\nok\n") == [_TOO_LONG, b"ok"]


def test_a_line_over_the_cap_is_dropped_as_it_arrives_and_refused_once() -> None:
    lines = LineSplitter(cap=10)
    assert lines.feed(b"x" * 11) == []
    assert len(lines._partial) == 0, "nothing of an over-long line is kept"
    for _ in range(100):
        assert lines.feed(b"y" * 1000) == []
        assert len(lines._partial) == 0
    assert lines.feed(b"zz\nnext\n") == [_TOO_LONG, b"next"]


def test_the_end_of_input_yields_an_unterminated_last_line() -> None:
    lines = LineSplitter(cap=10)
    assert lines.feed(b"a\nlast") == [b"a"]
    assert lines.end() == [b"last"]
    assert lines.end() == []
    assert lines.feed(b"x" * 20) == []
    assert lines.end() == [_TOO_LONG]


def test_the_wire_writer_writes_every_message_in_order_and_flushes_on_close(tmp_path: Path) -> None:
    path = tmp_path / "wire"
    with path.open("wb") as stream:
        wire = _WireWriter(stream, max_pending=1 << 20)
        for n in range(1000):
            assert wire.send(b"%d\n" % n) is False
        wire.close()
    assert path.read_bytes().splitlines() == [b"%d" % n for n in range(1000)]


def test_a_reader_that_stops_reading_holds_up_the_sender_with_bounded_bytes_queued() -> None:
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "wb")
    limit = 64 * 1024
    message = b"x" * 4095 + b"\n"
    total = 200  # 800 KiB: far more than the pipe and the limit hold
    wire = _WireWriter(stream, max_pending=limit)
    sent = 0

    def sender() -> None:  # as `_pump_out` sends: waiting for room whenever told to
        nonlocal sent
        for _ in range(total):
            if wire.send(message):
                wire.wait_for_room()
            sent += 1

    thread = threading.Thread(target=sender, daemon=True)
    try:
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the sender is held up while the reader reads nothing"
        # The pipe's 64 KiB, one batch being written and at most the limit queued behind it.
        assert sent * len(message) <= 64 * 1024 + 2 * (limit + len(message))
        received = 0
        while received < total * len(message):
            received += len(os.read(read_fd, 1 << 16))
        thread.join(5)
        assert sent == total
    finally:
        wire.stop()
        os.close(read_fd)
        with contextlib.suppress(OSError):
            stream.close()


def test_a_write_to_a_reader_that_has_gone_fails_the_next_send() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    stream = os.fdopen(write_fd, "wb")
    wire = _WireWriter(stream, max_pending=1 << 20)
    wire.send(b"lost\n")
    with pytest.raises(BrokenPipeError):
        wire.close()
    with pytest.raises(BrokenPipeError):
        wire.send(b"more\n")
    with contextlib.suppress(OSError):
        stream.close()


def _request(request_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode() + b"\n"


async def _echo_until_end(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer every request the transport lets through with an empty result."""
    transport = guarded_stdio_server(max_line_bytes=1024, streams=(stdin, stdout))
    async with transport as (read_stream, write_stream), read_stream, write_stream:
        async for message in read_stream:
            assert isinstance(message, SessionMessage)
            request = message.message
            assert isinstance(request, types.JSONRPCRequest)
            answer = types.JSONRPCResponse(jsonrpc="2.0", id=request.id, result={})
            await write_stream.send(SessionMessage(answer))


def _answers(path: Path) -> list[object]:
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines()]


async def test_requests_from_a_pipe_are_answered_in_order_until_end_of_input(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    requests = b"".join(_request(n) for n in range(200)) + b"not json\n" + _request(200)

    def client() -> None:
        os.write(write_fd, requests)
        os.close(write_fd)

    writer = threading.Thread(target=client, daemon=True)
    writer.start()
    out = tmp_path / "out"
    with os.fdopen(read_fd, "rb") as stdin, out.open("wb") as stdout:
        with anyio.fail_after(10):
            await _echo_until_end(stdin, stdout)
    writer.join()
    assert _answers(out) == [*range(200), None, 200]


async def test_requests_from_a_regular_file_are_read_in_a_worker_thread(tmp_path: Path) -> None:
    # The event loop cannot watch a regular file; the transport reads it from a thread instead.
    source = tmp_path / "requests"
    source.write_bytes(b"".join(_request(n) for n in range(5)) + b"x" * 2000 + b"\n" + _request(5).rstrip(b"\n"))
    out = tmp_path / "out"
    with source.open("rb") as stdin, out.open("wb") as stdout:
        with anyio.fail_after(10):
            await _echo_until_end(stdin, stdout)
    assert _answers(out) == [0, 1, 2, 3, 4, None, 5]
