"""Resumable SSE streams: replay stays inside its own session and the store stays bounded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.server.streamable_http import EventMessage

from server.event_store import InMemoryEventStore
from server.fixtures import install_fixtures
from tests.e2e.inprocess import make_runtime, serve_in_process
from tests.e2e.raw import ACCEPT, HANDSHAKE_VERSION, call_body, initialize_body

pytestmark = pytest.mark.anyio

SIMPLE_TEXT = "This is a simple text response for testing."


def note(text: str) -> types.JSONRPCMessage:
    return types.JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"data": text})


async def replayed(store: InMemoryEventStore, after: str) -> tuple[str | None, list[str]]:
    got: list[str] = []

    async def collect(event: EventMessage) -> None:
        assert isinstance(event.message, types.JSONRPCNotification)
        assert event.message.params is not None
        got.append(event.message.params["data"])

    stream = await store.replay_events_after(after, collect)
    return stream, got


async def test_replay_resends_later_events_of_the_same_stream_but_not_priming_markers() -> None:
    store = InMemoryEventStore()
    anchor = await store.store_event("5", None)
    await store.store_event("5", note("one"))
    await store.store_event("6", note("other stream"))
    await store.store_event("5", None)
    await store.store_event("5", note("two"))

    assert await replayed(store, anchor) == ("5", ["one", "two"])


async def test_the_oldest_events_are_dropped_beyond_the_bound_and_cannot_anchor_a_replay() -> None:
    store = InMemoryEventStore(max_events=3)
    first = await store.store_event("1", note("a"))
    for text in ("b", "c", "d"):
        await store.store_event("1", note(text))

    assert store.size == 3
    assert await replayed(store, first) == (None, [])


async def test_large_messages_evict_older_events_once_the_byte_bound_is_passed() -> None:
    store = InMemoryEventStore(max_bytes=4096)
    first = await store.store_event("1", note("x" * 3000))
    await store.store_event("1", note("y" * 3000))

    assert store.size == 1
    assert store.bytes <= 4096
    assert await replayed(store, first) == (None, [])


async def test_event_ids_are_unpredictable_rather_than_counters() -> None:
    store = InMemoryEventStore()
    ids = [await store.store_event("1", None) for _ in range(50)]

    assert len(set(ids)) == 50
    assert not any(event_id.isdigit() for event_id in ids)


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    runtime = make_runtime(tmp_path)
    install_fixtures(runtime)
    async with serve_in_process(runtime) as endpoint:
        yield endpoint


async def open_session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    opened = await client.post(url, json=initialize_body(), headers={"Accept": ACCEPT})
    headers = {
        "Accept": ACCEPT,
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": HANDSHAKE_VERSION,
    }
    await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def sse_events(
    response: httpx.Response, *, until_id: int | None = None, first_message: bool = False
) -> list[dict[str, Any]]:
    """SSE events as {'id', 'data'}, up to the JSON-RPC response `until_id`, the first JSON-RPC
    message (`first_message`), or the end of the stream."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith("id:"):
            current["id"] = line[3:].strip()
        elif line.startswith("data:"):
            current["data"] = line[5:].strip()
        elif not line and current:
            events.append(current)
            data = json.loads(current["data"]) if current.get("data") else {}
            current = {}
            if until_id is not None and data.get("id") == until_id and "result" in data:
                break
            if first_message and data:
                break
    return events


async def test_a_reconnecting_session_never_receives_another_sessions_events_on_the_same_stream_name(
    url: str,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        alice, mallory = await open_session(client, url), await open_session(client, url)
        # Alice's call closes its SSE stream mid-way; the rest waits in the store under stream "5".
        async with client.stream("POST", url, json=call_body(5, "test_reconnection"), headers=alice) as cut:
            before = await sse_events(cut)
        anchor = before[0]["id"]
        # Mallory uses the same JSON-RPC id, so the SDK files her events under stream "5" too.
        mallory_call = await client.post(url, json=call_body(5), headers=mallory)
        assert SIMPLE_TEXT in mallory_call.text

        async with client.stream("GET", url, headers={**alice, "last-event-id": anchor}) as resumed:
            alice_replay = await sse_events(resumed, until_id=5)
        async with client.stream("GET", url, headers={**mallory, "last-event-id": anchor}) as probe:
            mallory_replay = await sse_events(probe, first_message=True)

    replay_text = " ".join(event.get("data", "") for event in alice_replay)
    assert "Reconnection test completed" in replay_text
    assert SIMPLE_TEXT not in replay_text
    assert [event["data"] for event in mallory_replay if event.get("data")] == []
