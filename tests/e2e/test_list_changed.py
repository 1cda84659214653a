"""A tool added at run time reaches connected clients in both protocol eras.

Handshake era: the server sends `notifications/tools/list_changed` on the session (over Streamable
HTTP, on the client's standalone GET stream). 2026-07-28: the client holds a `subscriptions/listen`
stream and receives `ToolsListChanged`. Waits are events with a deadline, never sleeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.stdio import StdioServerParameters
from mcp.client.subscriptions import ToolsListChanged

from tests.e2e.inprocess import make_runtime, serve_in_process
from tests.support.barriers import get_stream_barrier
from tools.model import CallContext, Tool, ToolResult

pytestmark = pytest.mark.anyio

DEADLINE_S = 10
SIMPLE_TEXT = "This is a simple text response for testing."


async def _added(_: Mapping[str, Any], __: CallContext) -> ToolResult:
    return ToolResult.text("added at run time")


def _runtime_tool() -> Tool:
    return Tool(
        name="added_at_runtime",
        description="Registered while clients are connected",
        input_schema={"type": "object", "properties": {}},
        executor=_added,
        source="e2e-runtime",
    )


class _ListChangedWatcher:
    """A `message_handler` that sets an event when tools/list_changed arrives."""

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.count = 0

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self.arrived.set()


async def test_tool_added_through_registry_notifies_handshake_era_http_client(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path)
    watcher = _ListChangedWatcher()
    async with serve_in_process(runtime) as url:
        with get_stream_barrier() as get_stream_open:
            async with Client(url, mode="legacy", message_handler=watcher) as client:
                before = await client.list_tools()
                assert "added_at_runtime" not in {tool.name for tool in before.tools}
                assert client.server_capabilities.tools is not None
                assert client.server_capabilities.tools.list_changed is True
                with anyio.fail_after(DEADLINE_S):
                    await get_stream_open.wait()

                runtime.registry.add(_runtime_tool())

                with anyio.fail_after(DEADLINE_S):
                    await watcher.arrived.wait()
                after = await client.list_tools()
                assert "added_at_runtime" in {tool.name for tool in after.tools}
                result = await client.call_tool("added_at_runtime", {})
                assert result.content == [types.TextContent(type="text", text="added at run time")]


async def test_tool_added_through_registry_reaches_2026_listen_stream_over_http(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path)
    async with serve_in_process(runtime) as url, Client(url) as client:
        assert client.protocol_version == "2026-07-28"
        before = await client.list_tools()
        assert "added_at_runtime" not in {tool.name for tool in before.tools}
        async with client.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed is True

            runtime.registry.add(_runtime_tool())

            with anyio.fail_after(DEADLINE_S):
                event = await subscription.__anext__()
            assert isinstance(event, ToolsListChanged)
            # The listen event evicted the cached list, so this is a fresh tools/list.
            after = await client.list_tools()
            assert "added_at_runtime" in {tool.name for tool in after.tools}


async def test_tool_removed_through_registry_notifies_every_connected_http_session(tmp_path: Path) -> None:
    runtime = make_runtime(tmp_path)
    runtime.registry.add(_runtime_tool())
    watchers = [_ListChangedWatcher(), _ListChangedWatcher()]
    async with serve_in_process(runtime) as url:
        with get_stream_barrier() as first_open:
            async with Client(url, mode="legacy", message_handler=watchers[0]) as first:
                await first.list_tools()
                with anyio.fail_after(DEADLINE_S):
                    await first_open.wait()
                with get_stream_barrier() as second_open:
                    async with Client(url, mode="legacy", message_handler=watchers[1]) as second:
                        await second.list_tools()
                        with anyio.fail_after(DEADLINE_S):
                            await second_open.wait()

                        runtime.registry.remove("added_at_runtime")

                        with anyio.fail_after(DEADLINE_S):
                            for watcher in watchers:
                                await watcher.arrived.wait()
                        for client in (first, second):
                            names = {tool.name for tool in (await client.list_tools()).tools}
                            assert "added_at_runtime" not in names


async def test_fixture_tool_change_notifies_handshake_era_client_over_stdio(
    stdio_params: StdioServerParameters,
) -> None:
    watcher = _ListChangedWatcher()
    async with Client(stdio_params, mode="legacy", message_handler=watcher) as client:
        assert client.protocol_version == "2025-11-25"
        result = await client.call_tool("test_trigger_tool_change", {})
        assert result.is_error is False
        # The fixture waits for the fan-out, so the notification is on the wire before the result.
        with anyio.fail_after(DEADLINE_S):
            await watcher.arrived.wait()
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"test_simple_text", "test_trigger_tool_change"} <= names


async def test_fixture_tool_change_reaches_2026_listen_stream_over_stdio(
    stdio_params: StdioServerParameters,
) -> None:
    async with Client(stdio_params) as client:
        assert client.protocol_version == "2026-07-28"
        async with client.listen(tools_list_changed=True) as subscription:
            result = await client.call_tool("test_trigger_tool_change", {})
            assert result.is_error is False
            with anyio.fail_after(DEADLINE_S):
                event = await subscription.__anext__()
            assert isinstance(event, ToolsListChanged)
        text = await client.call_tool("test_simple_text", {})
        assert text.content == [types.TextContent(type="text", text=SIMPLE_TEXT)]
