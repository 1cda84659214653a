"""Fan registry and catalog changes out to connected clients in both protocol eras.

Handshake era (≤ 2025-11-25): each live connection gets `notifications/tools/list_changed` (and
the prompts/resources variants) on its standalone channel; `notifications/resources/updated`
goes only to connections that subscribed to that URI.
Stateless era (2026-07-28): the event is published on the subscription bus, and every open
`subscriptions/listen` stream that asked for that kind of change receives it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import structlog
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from tools.catalog import CatalogChange

__all__ = ["ChangeNotifier", "connection_of"]

log = structlog.get_logger("toolkiln.notify")


class ChangeNotifier:
    """Tracks handshake-era connections and publishes list changes to both eras.

    `track` is a server middleware: it sees every inbound message, so each connection is known
    from its first request on. Connections are held weakly; a closed one simply drops out.
    The SDK's `ServerSession` is a per-request proxy that dies with its request, so it cannot
    be what we hold: the connection behind it is what outlives the request.
    """

    def __init__(self, bus: SubscriptionBus | None = None) -> None:
        self.bus: SubscriptionBus = bus or InMemorySubscriptionBus()
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._resource_subscriptions: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def track(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            connection = connection_of(ctx.session)
            if connection is not None:
                self._connections.add(connection)
        return await call_next(ctx)

    @property
    def session_count(self) -> int:
        return len(self._connections)

    def tools_changed(self, _version: int = 0) -> None:
        """Registry listener: schedule the notifications from any thread."""
        self._schedule(self.publish_tools_changed())

    def prompts_changed(self) -> None:
        self._schedule(self.publish_prompts_changed())

    def catalog_changed(self, change: CatalogChange) -> None:
        """Catalog listener: list changes for resources or prompts, or one resource's update."""
        if change.kind == "prompts":
            self._schedule(self.publish_prompts_changed())
        elif change.kind == "resources":
            self._schedule(self.publish_resources_changed())
        elif change.uri is not None:
            self._schedule(self.publish_resource_updated(change.uri))

    def subscribe_resource(self, session: ServerSession, uri: str) -> None:
        """Handshake-era `resources/subscribe`: remember `uri` for this session's connection."""
        connection = connection_of(session)
        if connection is not None:
            self._resource_subscriptions.setdefault(connection, set()).add(uri)

    def unsubscribe_resource(self, session: ServerSession, uri: str) -> None:
        connection = connection_of(session)
        if connection is not None:
            self._resource_subscriptions.get(connection, set()).discard(uri)

    async def publish_tools_changed(self) -> None:
        for connection in list(self._connections):
            await _deliver(connection, "notifications/tools/list_changed", self._connections)
        await self.bus.publish(ToolsListChanged())

    async def publish_prompts_changed(self) -> None:
        for connection in list(self._connections):
            await _deliver(connection, "notifications/prompts/list_changed", self._connections)
        await self.bus.publish(PromptsListChanged())

    async def publish_resources_changed(self) -> None:
        for connection in list(self._connections):
            await _deliver(connection, "notifications/resources/list_changed", self._connections)
        await self.bus.publish(ResourcesListChanged())

    async def publish_resource_updated(self, uri: str) -> None:
        for connection, uris in list(self._resource_subscriptions.items()):
            if uri in uris:
                await _deliver(connection, "notifications/resources/updated", self._connections, {"uri": uri})
        await self.bus.publish(ResourceUpdated(uri=uri))

    def _schedule(self, coro: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._spawn(coro)
        else:
            loop.call_soon_threadsafe(self._spawn, coro)

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for scheduled notifications (used by tests and at shutdown)."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


def connection_of(session: ServerSession) -> Connection | None:
    """The connection behind a per-request session proxy (its `state` outlives the request)."""
    # The SDK gives handlers no public path to the connection; the session proxy holds it.
    connection = getattr(session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


async def _deliver(
    connection: Connection,
    method: str,
    tracked: weakref.WeakSet[Connection],
    params: dict[str, Any] | None = None,
) -> None:
    try:
        await connection.notify(method, params)
    except Exception as exc:  # a broken connection must not stop the others
        log.debug("list_changed_not_delivered", error=type(exc).__name__)
        tracked.discard(connection)
