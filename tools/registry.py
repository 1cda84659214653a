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
            old = [self._tools[name] for name in old_names]
            if old == new:
                return self._version
            for name in old_names:
                del self._tools[name]
            for tool in new:
                self._tools[tool.name] = tool
            if new:
                self._by_source[source] = tuple(tool.name for tool in new)
            else:
                self._by_source.pop(source, None)
            version = self._commit()
        log.info("registry_changed", source=source, tools=len(new), version=version)
        self._notify(version)
        return version

    def add(self, tool: Tool) -> int:
        """Add one tool to its source's set (replacing a tool of the same name in that source)."""
        current = [t for t in self._source_tools(tool.source) if t.name != tool.name]
        return self.replace_source(tool.source, [*current, tool])

    def remove(self, name: str) -> int:
        """Remove one tool by name; a missing name changes nothing."""
        tool = self._tools.get(name)
        if tool is None:
            return self._version
        rest = [t for t in self._source_tools(tool.source) if t.name != name]
        return self.replace_source(tool.source, rest)

    def subscribe(self, listener: RegistryListener) -> Callable[[], None]:
        """Call `listener(version)` after every change; returns an idempotent unsubscribe."""
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def _source_tools(self, source: str) -> list[Tool]:
        return [self._tools[name] for name in self._by_source.get(source, ())]

    def _commit(self) -> int:
        self._version += 1
        self._snapshot = tuple(self._tools.values())
        return self._version

    def _notify(self, version: int) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(version)
            except Exception:  # one broken listener must not stop the others
                log.exception("registry_listener_failed")
