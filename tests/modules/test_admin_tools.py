"""The management tools: admin only, through the same pipeline; approval by elicitation in the
2026-07-28 era (`InputRequiredResult`), with the new tools announced on the listen stream."""

from __future__ import annotations

from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.subscriptions import ToolsListChanged

from modules.source import install_modules
from server.config import ModulesSettings, ServerSettings, Settings
from server.runtime import Runtime
from tests.e2e.inprocess import serve_in_process
from tests.modules.support import DEADLINE_S, place_module, weather_upstream
from tools.model import Principal

pytestmark = pytest.mark.anyio

MANAGEMENT = {
    "modules_list",
    "modules_status",
    "modules_validate",
    "modules_request_approval",
    "modules_activate",
    "modules_disable",
    "modules_rollback",
    "modules_unload",
}


def _runtime(data_dir: Path) -> Runtime:
    settings = Settings(
        server=ServerSettings(data_dir=data_dir), modules=ModulesSettings(poll_interval_s=3600, management_tools=True)
    )
    runtime = Runtime(settings)
    install_modules(runtime)
    return runtime


@pytest.mark.parametrize(
    ("roles", "sees"),
    [
        pytest.param(("admin",), True, id="admin"),
        pytest.param(("developer",), False, id="developer"),
        pytest.param(("agent",), False, id="agent"),
        pytest.param(("readonly",), False, id="readonly"),
    ],
)
def test_only_admins_see_the_management_tools(tmp_path: Path, roles: tuple[str, ...], sees: bool) -> None:
    runtime = _runtime(tmp_path)
    visible = {tool.name for tool in runtime.pipeline.list_tools(Principal("someone", roles=roles))}
    assert visible & MANAGEMENT == (MANAGEMENT if sees else set())


async def test_2026_client_approves_through_input_required_and_hears_the_new_tool_on_listen(tmp_path: Path) -> None:
    asked: list[str] = []

    async def human(_: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    with weather_upstream() as origin:
        place_module(tmp_path, "weather", "1.0.0", origin=origin)
        runtime = _runtime(tmp_path)
        async with serve_in_process(runtime) as url, Client(url, elicitation_callback=human) as client:
            assert client.protocol_version == "2026-07-28"
            validated = await client.call_tool("modules_validate", {"module": "weather@1.0.0"})
            assert validated.is_error is False
            approved = await client.call_tool("modules_request_approval", {"module": "weather@1.0.0"})
            assert approved.is_error is False, approved.content
            assert len(asked) == 1
            assert "weather@1.0.0" in asked[0]
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("modules_activate", {"module": "weather@1.0.0"})
                with anyio.fail_after(DEADLINE_S):
                    event = await subscription.__anext__()
                assert isinstance(event, ToolsListChanged)
            answer = await client.call_tool("weather_now", {"city": "Oslo"})
            assert answer.structured_content == {"city": "Oslo", "temp_c": 21, "module_version": "1.0.0"}


async def test_a_declined_approval_leaves_the_version_validated(tmp_path: Path) -> None:
    async def human(_: ClientRequestContext, __: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    place_module(tmp_path, "weather", "1.0.0")
    runtime = _runtime(tmp_path)
    async with serve_in_process(runtime) as url, Client(url, mode="legacy", elicitation_callback=human) as client:
        await client.call_tool("modules_validate", {"module": "weather@1.0.0"})
        declined = await client.call_tool("modules_request_approval", {"module": "weather@1.0.0"})
        status = await client.call_tool("modules_status", {"module": "weather@1.0.0"})
    assert declined.is_error is True
    assert status.structured_content is not None
    assert status.structured_content["state"] == "validated"
