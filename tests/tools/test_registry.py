"""The versioned registry: atomic per-source replacement, collisions as errors, change listeners."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tools.errors import ToolNameCollision
from tools.model import CallContext, Tool, ToolResult
from tools.registry import ToolRegistry


async def _noop(_arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


def _tool(name: str, source: str = "alpha", description: str = "d") -> Tool:
    return Tool(name=name, description=description, input_schema={"type": "object"}, executor=_noop, source=source)


def _names(registry: ToolRegistry) -> list[str]:
    return [tool.name for tool in registry.tools()]


def test_a_new_registry_is_empty_at_version_zero() -> None:
    registry = ToolRegistry()
    assert registry.version == 0
    assert registry.tools() == ()
    assert registry.sources() == {}
    assert registry.get("anything") is None


def test_every_change_bumps_the_version_by_one_and_returns_it() -> None:
    registry = ToolRegistry()
    assert registry.replace_source("alpha", [_tool("a1"), _tool("a2")]) == 1
    assert registry.add(_tool("b1", source="beta")) == 2
    assert registry.remove("a1") == 3
    assert registry.version == 3
    assert _names(registry) == ["a2", "b1"]


def test_replacing_a_source_with_an_equal_set_changes_nothing() -> None:
    registry = ToolRegistry()
    tools = [_tool("a1"), _tool("a2")]
    registry.replace_source("alpha", tools)
    seen: list[int] = []
    registry.subscribe(seen.append)
    assert registry.replace_source("alpha", list(tools)) == 1
    assert registry.replace_source("empty", []) == 1
    assert registry.remove("missing") == 1
    assert seen == []


def test_replace_source_swaps_the_whole_set_and_leaves_other_sources_alone() -> None:
    registry = ToolRegistry()
    registry.replace_source("alpha", [_tool("a1"), _tool("a2")])
    registry.replace_source("beta", [_tool("b1", source="beta")])
    registry.replace_source("alpha", [_tool("a3")])
    assert registry.get("a1") is None
    assert registry.get("a2") is None
    assert registry.get("a3") is not None
    assert registry.sources() == {"alpha": ("a3",), "beta": ("b1",)}
    assert _names(registry) == ["a3", "b1"], "a reloaded source keeps its place in the list"
    registry.replace_source("alpha", [])
    assert registry.sources() == {"beta": ("b1",)}
    assert _names(registry) == ["b1"]


def test_a_name_owned_by_another_source_is_a_collision_and_never_an_overwrite() -> None:
    registry = ToolRegistry()
    original = _tool("shared", source="alpha", description="the first one")
    registry.replace_source("alpha", [original])
    with pytest.raises(ToolNameCollision, match="'shared' from source 'beta' collides with the one from 'alpha'"):
        registry.replace_source("beta", [_tool("b1", source="beta"), _tool("shared", source="beta")])
    with pytest.raises(ToolNameCollision):
        registry.add(_tool("shared", source="beta"))
    assert registry.get("shared") is original
    assert registry.get("b1") is None
    assert registry.version == 1
    assert registry.sources() == {"alpha": ("shared",)}


def test_a_name_repeated_within_one_set_is_a_collision_and_nothing_changes() -> None:
    registry = ToolRegistry()
    registry.replace_source("alpha", [_tool("a1")])
    with pytest.raises(ToolNameCollision):
        registry.replace_source("alpha", [_tool("a2"), _tool("a2", description="again")])
    assert _names(registry) == ["a1"]
    assert registry.version == 1


def test_a_tool_must_belong_to_the_source_it_is_registered_under() -> None:
    registry = ToolRegistry()
    with pytest.raises(ValueError, match="belongs to 'beta', not 'alpha'"):
        registry.replace_source("alpha", [_tool("b1", source="beta")])
    assert registry.version == 0


def test_a_failed_replace_tells_no_listener() -> None:
    registry = ToolRegistry()
    registry.replace_source("alpha", [_tool("x")])
    seen: list[int] = []
    registry.subscribe(seen.append)
    with pytest.raises(ToolNameCollision):
        registry.replace_source("beta", [_tool("x", source="beta")])
    assert seen == []


def test_add_replaces_a_same_named_tool_of_the_same_source() -> None:
    registry = ToolRegistry()
    registry.add(_tool("a1", description="old"))
    newer = _tool("a1", description="new")
    registry.add(newer)
    assert registry.get("a1") is newer
    assert _names(registry) == ["a1"]


def test_tools_returns_an_immutable_snapshot_that_later_changes_do_not_touch() -> None:
    registry = ToolRegistry()
    registry.replace_source("alpha", [_tool("a1")])
    snapshot = registry.tools()
    registry.add(_tool("a2"))
    assert isinstance(snapshot, tuple)
    assert [tool.name for tool in snapshot] == ["a1"]
    assert _names(registry) == ["a1", "a2"]


def test_listeners_get_each_new_version_until_they_unsubscribe() -> None:
    registry = ToolRegistry()
    seen: list[int] = []
    unsubscribe = registry.subscribe(seen.append)
    registry.add(_tool("a1"))
    registry.add(_tool("a2"))
    unsubscribe()
    unsubscribe()  # idempotent
    registry.add(_tool("a3"))
    assert seen == [1, 2]


def test_a_failing_listener_does_not_stop_the_others_or_the_change() -> None:
    registry = ToolRegistry()
    seen: list[int] = []

    def broken(_version: int) -> None:
        raise RuntimeError("listener bug")

    registry.subscribe(broken)
    registry.subscribe(seen.append)
    assert registry.add(_tool("a1")) == 1
    assert seen == [1]
    assert registry.get("a1") is not None


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond, so races show up in a short test."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("eager_thread_switching")
def test_concurrent_adds_to_one_source_from_threads_lose_no_tool() -> None:
    registry = ToolRegistry()
    workers, per_worker = 4, 150
    barrier = threading.Barrier(workers)
    failures: list[BaseException] = []

    def add_many(worker: int) -> None:
        barrier.wait()
        try:
            for i in range(per_worker):
                registry.add(_tool(f"t{worker}_{i}"))
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=add_many, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(registry.tools()) == workers * per_worker
    assert registry.version == workers * per_worker


@pytest.mark.usefixtures("eager_thread_switching")
def test_a_reader_never_sees_half_of_a_source_being_replaced() -> None:
    registry = ToolRegistry()
    first = [_tool("same"), _tool("old_only")]
    second = [_tool("same", description="v2"), _tool("new_only")]
    registry.replace_source("alpha", first)
    stop = threading.Event()
    torn: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            # A name present in both versions must always resolve, mid-swap included.
            for _ in range(100):
                if registry.get("same") is None:
                    torn.append("get")
            names = {tool.name for tool in registry.tools()}
            if names not in ({"same", "old_only"}, {"same", "new_only"}):
                torn.append(f"snapshot {sorted(names)}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(2000):
            registry.replace_source("alpha", second if i % 2 == 0 else first)
    finally:
        stop.set()
        thread.join()
    assert torn == []
