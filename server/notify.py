"""Fan registry changes out to connected clients in both protocol eras.

Handshake era (≤ 2025-11-25): each live session gets `notifications/tools/list_changed`.
Stateless era (2026-07-28): the event is published on the subscription bus, and every open
`subscriptions/listen` stream that asked for tool changes receives it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["ChangeNotifier"]

log = structlog.get_logger("toolkiln.notify")


class ChangeNotifier:
    """Tracks handshake-era sessions and publishes list changes to both eras.

    `track` is a server middleware: it sees every inbound message, so each session is known
    from its first request on. Sessions are held weakly; a closed one simply drops out.
    """

    def __init__(self, bus: SubscriptionBus | None = None) -> None:
        self.bus: SubscriptionBus = bus or InMemorySubscriptionBus()
        self._sessions: weakref.WeakSet[ServerSession] = weakref.WeakSet()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def track(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._sessions.add(ctx.session)
        return await call_next(ctx)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def tools_changed(self, _version: int = 0) -> None:
        """Registry listener: schedule the notifications from any thread."""
        self._schedule(self.publish_tools_changed())

    def prompts_changed(self) -> None:
        self._schedule(self.publish_prompts_changed())

    async def publish_tools_changed(self) -> None:
        for session in list(self._sessions):
            try:
                await session.send_tool_list_changed()
            except Exception as exc:  # a closed session must not stop the others
                log.debug("list_changed_not_delivered", error=type(exc).__name__)
                self._sessions.discard(session)
        await self.bus.publish(ToolsListChanged())

    async def publish_prompts_changed(self) -> None:
        for session in list(self._sessions):
            try:
                await session.send_prompt_list_changed()
            except Exception as exc:
                log.debug("list_changed_not_delivered", error=type(exc).__name__)
                self._sessions.discard(session)
        await self.bus.publish(PromptsListChanged())

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
