"""The versioned registry that every tool source feeds.

Sources own disjoint sets of names. A source replaces its whole set atomically (a reloaded spec,
a hot-loaded module), so a reader never sees half a source. Each change bumps `version` and
tells the listeners, which the server turns into list-changed notifications.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import structlog

from tools.errors import ToolNameCollision
from tools.model import Tool

__all__ = ["RegistryListener", "ToolRegistry"]

RegistryListener = Callable[[int], None]

log = structlog.get_logger("toolkiln.registry")


class ToolRegistry:
    """Name → `Tool`, grouped by source, with a version and change listeners."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._by_source: dict[str, tuple[str, ...]] = {}
        self._version = 0
        self._snapshot: tuple[Tool, ...] = ()
        self._listeners: dict[object, RegistryListener] = {}
        # Sources may be rebuilt from a file-watcher thread; readers on the loop use snapshots.
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self._version

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def tools(self) -> tuple[Tool, ...]:
        """All tools, in registration order. The tuple is an immutable snapshot."""
        return self._snapshot

    def sources(self) -> dict[str, tuple[str, ...]]:
        return dict(self._by_source)

    def replace_source(self, source: str, tools: Iterable[Tool]) -> int:
        """Make `tools` the complete set owned by `source`; returns the new version.

        Raises:
            ToolNameCollision: a name is owned by another source, or repeated within `tools`.
                Nothing changes in that case.
        """
        new = list(tools)
        with self._lock:
            version = self._replace(source, new)
        return self._announce(source, len(new), version)

    def add(self, tool: Tool) -> int:
        """Add one tool to its source's set (replacing a tool of the same name in that source).

        Raises:
            ToolNameCollision: another source owns the name.
        """
        # Read-modify-write under one lock hold, so concurrent adds to a source never lose a tool.
        with self._lock:
            current = [t for t in self._source_tools(tool.source) if t.name != tool.name]
            new = [*current, tool]
            version = self._replace(tool.source, new)
        return self._announce(tool.source, len(new), version)

    def remove(self, name: str) -> int:
        """Remove one tool by name; a missing name changes nothing."""
        with self._lock:
            tool = self._tools.get(name)
            if tool is None:
                return self._version
            rest = [t for t in self._source_tools(tool.source) if t.name != name]
            version = self._replace(tool.source, rest)
        return self._announce(tool.source, len(rest), version)

    def subscribe(self, listener: RegistryListener) -> Callable[[], None]:
        """Call `listener(version)` after every change; returns an idempotent unsubscribe."""
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def _source_tools(self, source: str) -> list[Tool]:
        return [self._tools[name] for name in self._by_source.get(source, ())]

    def _replace(self, source: str, new: list[Tool]) -> int | None:
        """Swap in `source`'s new set; the caller holds the lock. `None` when nothing changed."""
        seen: set[str] = set()
        for tool in new:
            if tool.source != source:
                raise ValueError(f"tool {tool.name!r} belongs to {tool.source!r}, not {source!r}")
            owner = self._tools.get(tool.name)
            if owner is not None and owner.source != source:
                raise ToolNameCollision(tool.name, owner.source, source)
            if tool.name in seen:
                raise ToolNameCollision(tool.name, source, source)
            seen.add(tool.name)
        old_names = self._by_source.get(source, ())
        if [self._tools[name] for name in old_names] == new:
            return None
        # Copy-on-write: `get` runs on the event loop without the lock, so it must only ever see
        # a whole old map or a whole new one, never a name deleted and not yet re-added.
        # The source keeps its place in the order, so a reload does not reshuffle tools/list.
        tools: dict[str, Tool] = {}
        placed = False
        for name, tool in self._tools.items():
            if tool.source != source:
                tools[name] = tool
            elif not placed:
                tools.update((t.name, t) for t in new)
                placed = True
        if not placed:
            tools.update((t.name, t) for t in new)
        by_source = dict(self._by_source)
        if new:
            by_source[source] = tuple(tool.name for tool in new)
        else:
            by_source.pop(source, None)
        self._tools, self._by_source = tools, by_source
        self._version += 1
        self._snapshot = tuple(tools.values())
        return self._version

    def _announce(self, source: str, count: int, version: int | None) -> int:
        if version is None:
            return self._version
        log.info("registry_changed", source=source, tools=count, version=version)
        self._notify(version)
        return version

    def _notify(self, version: int) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(version)
            except Exception:  # one broken listener must not stop the others
                log.exception("registry_listener_failed")
