"""A hand-written module goes draft → validated → approved → active while an MCP client is connected.

Everything is real: the toolkiln HTTP server on loopback with the SDK `Client`, the sandboxed
worker, the egress broker calling a local weather API, the registry shared with the
`toolkiln modules` CLI running as another process. Waits are list-changed notifications with a
deadline, never sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext

from modules.source import install_modules
from server.config import ModulesSettings, ServerSettings, Settings
from server.runtime import Runtime
from tests.e2e.inprocess import serve_in_process
from tests.modules.support import ListChanged, cli, place_module, weather_upstream, write_config
from tests.support.barriers import get_stream_barrier

pytestmark = pytest.mark.anyio


def _runtime(data_dir: Path) -> Runtime:
    settings = Settings(
        server=ServerSettings(data_dir=data_dir), modules=ModulesSettings(poll_interval_s=0.2, management_tools=True)
    )
    runtime = Runtime(settings)
    install_modules(runtime)
    return runtime


class Human:
    """The person at the host: answers the approval question, and remembers what was asked."""

    def __init__(self, approve: bool) -> None:
        self.approve = approve
        self.asked: list[str] = []

    async def __call__(self, _: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": self.approve})


async def _names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


async def _call(client: Client, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    return await client.call_tool(name, arguments)


def _text(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_module_goes_from_draft_to_serving_while_a_client_is_connected_then_tamper_and_rollback(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    config = write_config(data_dir)
    human = Human(approve=True)
    watcher = ListChanged()
    with weather_upstream() as origin:
        place_module(data_dir, "weather", "1.0.0", origin=origin)
        place_module(data_dir, "weather", "1.1.0", origin=origin)
        runtime = _runtime(data_dir)
        async with serve_in_process(runtime) as url:
            with get_stream_barrier() as get_stream_open:
                async with Client(url, mode="legacy", message_handler=watcher, elicitation_callback=human) as client:
                    assert "weather_now" not in await _names(client)
                    await get_stream_open.wait()

                    listed = await _call(client, "modules_list", {})
                    assert "weather@1.0.0: draft" in _text(listed)

                    validated = await _call(client, "modules_validate", {"module": "weather@1.0.0"})
                    assert validated.is_error is False, _text(validated)
                    assert validated.structured_content is not None
                    assert validated.structured_content["passed"] is True
                    assert validated.structured_content["tests"][0]["passed"] is True

                    approved = await _call(client, "modules_request_approval", {"module": "weather@1.0.0"})
                    assert approved.is_error is False, _text(approved)
                    assert "May reach: " + origin in human.asked[0]
                    assert "weather_now" in human.asked[0]

                    activated = await _call(client, "modules_activate", {"module": "weather@1.0.0"})
                    assert "weather now serves 1.0.0" in _text(activated)
                    await watcher.wait_for(1)
                    assert "weather_now" in await _names(client)
                    answer = await _call(client, "weather_now", {"city": "Oslo"})
                    assert answer.is_error is False, _text(answer)
                    assert answer.structured_content == {"city": "Oslo", "temp_c": 21, "module_version": "1.0.0"}

                    # The next version arrives through the CLI in another process; the server's
                    # poll hot-loads it and the client hears of it.
                    for step in (("validate",), ("approve", "--yes"), ("activate",)):
                        done = await cli(config, step[0], "weather@1.1.0", *step[1:])
                        assert done.returncode == 0, done.stderr
                    await watcher.wait_for(2)
                    answer = await _call(client, "weather_now", {"city": "Oslo"})
                    assert answer.structured_content is not None
                    assert answer.structured_content["module_version"] == "1.1.0"

                    # A file edited after approval: the next integrity pass disables the version.
                    code = data_dir / "modules" / "weather" / "1.1.0" / "weather.py"
                    code.write_text(code.read_text() + "\nTAMPERED = True\n")
                    await watcher.wait_for(3)
                    assert "weather_now" not in await _names(client)
                    status = await _call(client, "modules_status", {"module": "weather@1.1.0"})
                    assert status.structured_content is not None
                    assert status.structured_content["state"] == "disabled"
                    assert "file changed: weather.py" in status.structured_content["why"]

                    rolled = await _call(client, "modules_rollback", {"name": "weather"})
                    assert "weather now serves 1.0.0" in _text(rolled), _text(rolled)
                    await watcher.wait_for(4)
                    answer = await _call(client, "weather_now", {"city": "Bergen"})
                    assert answer.structured_content == {"city": "Bergen", "temp_c": 21, "module_version": "1.0.0"}

    events = await _audited_events(data_dir)
    assert ("tampered", "module:weather@1.1.0") in events
    assert ("approved", "module:weather@1.0.0") in events
    assert ("rolled_back", "module:weather@1.0.0") in events


async def _audited_events(data_dir: Path) -> set[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(data_dir / "audit.db") as db:
        rows = db.execute("SELECT status, tool FROM audit_records WHERE kind = 'event'").fetchall()
    return {(str(status), str(tool)) for status, tool in rows}
