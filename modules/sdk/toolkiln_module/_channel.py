"""The worker's end of its one socket to the server: length-prefixed JSON frames.

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON (one object). The same
format is read by `modules.sandbox.protocol` on the server's side; keep the two in step.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any

__all__ = ["Channel", "ChannelClosed", "channel", "install"]

_HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The server closed the socket: the worker has nothing left to do."""


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        # One exchange (a request and its answer) at a time, even if a module uses threads.
        self.exchange_lock = threading.RLock()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
        with self._send_lock:
            self._sock.sendall(_HEADER.pack(len(data)) + data)

    def _read(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(min(size - len(chunks), 1 << 20))
            if not chunk:
                raise ChannelClosed
            chunks += chunk
        return bytes(chunks)

    def recv(self) -> dict[str, Any]:
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        message = json.loads(self._read(size))
        if not isinstance(message, dict):
            raise ChannelClosed
        return message


_current: Channel | None = None


def install(chan: Channel) -> None:
    global _current
    _current = chan


def channel() -> Channel:
    if _current is None:
        raise RuntimeError("toolkiln_module is only usable inside a module worker")
    return _current
