"""A bounded in-memory event store for resumable Streamable HTTP streams (SEP-1699).

The SDK shares one store among all sessions and names a stream by the JSON-RPC request id,
so two sessions that both send request `5` write to the same stream name. Replaying by stream
name alone would hand one session's messages to another. Each event is therefore also tagged
with the session it belongs to: `SessionScopes` (ASGI middleware in front of the SDK app) puts
a per-session scope object in a context variable, which the SDK's per-session tasks inherit, and
replay only returns events of the caller's own session. Event ids are random, so one session
cannot name another's events either.

Memory is bounded by count and by serialized size: the oldest events are dropped first once
either bound is passed; a client that comes back later than that simply gets no replay.
"""

from __future__ import annotations

import contextvars
import secrets
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp_types import JSONRPCMessage
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["InMemoryEventStore", "SessionScopes"]

_SESSION_HEADER = b"mcp-session-id"


class _SessionScope:
    """Identity of one MCP session; compared by object identity, never by value."""

    __slots__ = ("__weakref__",)


_current: contextvars.ContextVar[_SessionScope | None] = contextvars.ContextVar("toolkiln_session_scope", default=None)


@dataclass(frozen=True, slots=True)
class _Event:
    seq: int
    scope: _SessionScope | None
    stream_id: StreamId
    message: JSONRPCMessage | None
    size: int


class InMemoryEventStore(EventStore):
    """Events in arrival order, evicted oldest-first beyond `max_events` or `max_bytes`."""

    def __init__(self, *, max_events: int = 10_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("max_events and max_bytes must be at least 1")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: OrderedDict[EventId, _Event] = OrderedDict()
        self._seq = 0
        self._bytes = 0

    @property
    def size(self) -> int:
        # Deliberately not `__len__`: the SDK tests the store for truth, and an empty store
        # must not read as "no store".
        return len(self._events)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = secrets.token_urlsafe(12)
        self._seq += 1
        size = 0 if message is None else len(message.model_dump_json(by_alias=True, exclude_unset=True))
        self._events[event_id] = _Event(self._seq, _current.get(), stream_id, message, size)
        self._bytes += size
        while len(self._events) > self.max_events or (self._bytes > self.max_bytes and len(self._events) > 1):
            _, dropped = self._events.popitem(last=False)
            self._bytes -= dropped.size
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        anchor = self._events.get(last_event_id)
        if anchor is None or anchor.scope is not _current.get():
            return None
        seen = anchor.seq
        # The callback awaits, so events keep arriving while we replay. Return only once a pass
        # finds nothing new: the SDK attaches the live stream right after we return without
        # yielding, so no event can fall between the replay and the live tail.
        while pending := [
            (event_id, event)
            for event_id, event in self._events.items()
            if event.seq > seen and event.scope is anchor.scope and event.stream_id == anchor.stream_id
        ]:
            for event_id, event in pending:
                seen = event.seq
                # Priming events (no message) only mark a position; there is nothing to resend.
                if event.message is not None:
                    await send_callback(EventMessage(event.message, event_id))
        return anchor.stream_id


class SessionScopes:
    """ASGI middleware giving every MCP session its own scope object for the event store.

    A request without a session id opens a session: it gets a fresh scope, and the session id
    the SDK answers with is remembered for it. Later requests carrying that id run under the
    same scope. Scopes are held weakly; they live as long as the session's tasks do.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._by_session: weakref.WeakValueDictionary[bytes, _SessionScope] = weakref.WeakValueDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session_id = _header(scope, _SESSION_HEADER)
        session = self._by_session.get(session_id) if session_id is not None else None
        opening = session is None and session_id is None
        if session is None:
            session = _SessionScope()
        token = _current.set(session)
        try:
            await self.app(scope, receive, self._remember(session, send) if opening else send)
        finally:
            _current.reset(token)

    def _remember(self, session: _SessionScope, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == _SESSION_HEADER:
                        self._by_session[bytes(value)] = session
            await send(message)

        return sending


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None
