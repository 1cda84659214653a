"""Barriers that wait for something a client does in the background, instead of sleeping."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["get_stream_barrier"]


class _LogBarrier(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextmanager
def get_stream_barrier() -> Iterator[anyio.Event]:
    """Set once a handshake-era HTTP client's standalone GET stream is open.

    The server drops a notification while no GET stream listens, and the client opens it in the
    background after the handshake; its debug log line is the only signal that it is there.
    """
    logger = logging.getLogger("mcp.client.streamable_http")
    barrier = _LogBarrier("GET SSE connection established")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(barrier)
    try:
        yield barrier.seen
    finally:
        logger.removeHandler(barrier)
        logger.setLevel(previous)
