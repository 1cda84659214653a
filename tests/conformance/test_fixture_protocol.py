"""The fixture source over real Streamable HTTP: what the suite relies on, pinned directly.

Raw JSON-RPC (httpx) for the 2026-07-28 multi-round flow, so tampered state reaches the server
exactly as written; the SDK `Client` for handshake-era behaviour. Waits are events with a
deadline, never sleeps.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage

from server.fixtures import install_fixtures
from server.fixtures.entries import WATCHED_URI
from server.runtime import Runtime
from tests.e2e.inprocess import make_runtime, serve_in_process
from tests.e2e.raw import ACCEPT, MODERN_VERSION, rpc_payload

pytestmark = pytest.mark.anyio

DEADLINE_S = 10


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Runtime, str]]:
    runtime = make_runtime(tmp_path)
    install_fixtures(runtime)
    async with serve_in_process(runtime) as url:
        yield runtime, url


async def modern(
    url: str, method: str, params: dict[str, Any], *, capabilities: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """One stateless 2026-07-28 request; returns the HTTP status and the JSON-RPC message."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "fixture-tests", "version": "1.0"},
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
    }
    headers = {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": MODERN_VERSION}
    headers["Mcp-Method"] = method
    # Mcp-Name mirrors the routed parameter; the server refuses a request where they differ.
    routed = params.get("uri") if method == "resources/read" else params.get("name")
    if isinstance(routed, str):
        headers["Mcp-Name"] = routed
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta}}
    async with httpx.AsyncClient(timeout=DEADLINE_S) as client:
        response = await client.post(url, json=body, headers=headers)
    return response.status_code, rpc_payload(response)


def accept(content: dict[str, Any]) -> dict[str, Any]:
    return {"action": "accept", "content": content}


async def first_round(url: str, tool: str) -> dict[str, Any]:
    status, message = await modern(url, "tools/call", {"name": tool, "arguments": {}})
    assert status == 200, message
    result: dict[str, Any] = message["result"]
    assert result["resultType"] == "input_required"
    return result


async def test_the_multi_round_tool_completes_after_three_rounds_with_evolving_sealed_state(
    served: tuple[Runtime, str],
) -> None:
    _, url = served
    tool = "test_input_required_result_multi_round"
    one = await first_round(url, tool)
    _, two = await modern(
        url,
        "tools/call",
        {
            "name": tool,
            "arguments": {},
            "inputResponses": {"step1": accept({"name": "Ada"})},
            "requestState": one["requestState"],
        },
    )
    assert list(two["result"]["inputRequests"]) == ["step2"]
    assert two["result"]["requestState"] != one["requestState"]

    _, three = await modern(
        url,
        "tools/call",
        {
            "name": tool,
            "arguments": {},
            "inputResponses": {"step2": accept({"color": "teal"})},
            "requestState": two["result"]["requestState"],
        },
    )

    assert three["result"]["content"][0]["text"] == "Ada likes teal"


def _flip_payload(token: str) -> str:
    body, mac = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-3] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + mac


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t: t + "-TAMPERED", id="suffix-appended"),
        pytest.param(_flip_payload, id="payload-bit-flipped"),
        pytest.param(lambda t: t.split(".")[1] + "." + t.split(".")[0], id="halves-swapped"),
    ],
)
async def test_a_tampered_request_state_is_a_json_rpc_invalid_params_error(
    served: tuple[Runtime, str], tamper: Any
) -> None:
    _, url = served
    tool = "test_input_required_result_tampered_state"
    state = (await first_round(url, tool))["requestState"]

    status, message = await modern(
        url,
        "tools/call",
        {
            "name": tool,
            "arguments": {},
            "inputResponses": {"confirm": accept({"ok": True})},
            "requestState": tamper(state),
        },
    )

    assert (status, message["error"]["code"]) == (400, -32602)
    assert "result" not in message


async def test_a_state_sealed_for_one_tool_is_refused_by_another(served: tuple[Runtime, str]) -> None:
    _, url = served
    foreign = (await first_round(url, "test_input_required_result_request_state"))["requestState"]

    _, message = await modern(
        url,
        "tools/call",
        {
            "name": "test_input_required_result_tampered_state",
            "arguments": {},
            "inputResponses": {"confirm": accept({"ok": True})},
            "requestState": foreign,
        },
    )

    assert message["error"]["code"] == -32602


async def test_a_missing_answer_is_asked_again_instead_of_failing(served: tuple[Runtime, str]) -> None:
    _, url = served

    _, message = await modern(
        url,
        "tools/call",
        {
            "name": "test_input_required_result_elicitation",
            "arguments": {},
            "inputResponses": {"wrong_key": accept({"name": "x"})},
        },
    )

    assert list(message["result"]["inputRequests"]) == ["user_name"]


async def test_only_declared_client_capabilities_are_asked_for(served: tuple[Runtime, str]) -> None:
    _, url = served

    _, message = await modern(
        url,
        "tools/call",
        {"name": "test_input_required_result_capabilities", "arguments": {}},
        capabilities={"sampling": {}},
    )

    methods = {request["method"] for request in message["result"]["inputRequests"].values()}
    assert methods == {"sampling/createMessage"}


async def test_a_tool_needing_an_undeclared_capability_is_refused_with_32021_and_never_runs(
    served: tuple[Runtime, str],
) -> None:
    _, url = served

    status, message = await modern(url, "tools/call", {"name": "test_missing_capability", "arguments": {}})

    assert status == 400
    assert message["error"]["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert message["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}


async def test_the_same_tool_runs_once_the_client_declares_the_capability(served: tuple[Runtime, str]) -> None:
    _, url = served

    _, message = await modern(
        url, "tools/call", {"name": "test_missing_capability", "arguments": {}}, capabilities={"sampling": {}}
    )

    assert message["result"]["content"][0]["text"] == "The client declared sampling"


async def test_an_unknown_resource_is_invalid_params_naming_the_uri(served: tuple[Runtime, str]) -> None:
    _, url = served

    _, message = await modern(url, "resources/read", {"uri": "test://nope"})

    assert message["error"]["code"] == -32602
    assert message["error"]["data"] == {"uri": "test://nope"}


async def test_completion_offers_only_candidates_with_the_typed_prefix(served: tuple[Runtime, str]) -> None:
    _, url = served
    params = {
        "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
        "argument": {"name": "arg1", "value": "par"},
    }

    _, message = await modern(url, "completion/complete", params)

    assert message["result"]["completion"]["values"] == ["paris", "park", "party"]


# The SDK's own helpers for these handshake-era methods warn (deprecated at 2026-07-28), and
# warnings are errors here; the plain typed requests are the same bytes on the wire.
async def set_level(client: Client, level: types.LoggingLevel) -> None:
    await client.session.send_request(
        types.SetLevelRequest(params=types.SetLevelRequestParams(level=level)), types.EmptyResult
    )


async def subscribe(client: Client, uri: str, *, on: bool = True) -> None:
    if on:
        await client.session.send_request(
            types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)), types.EmptyResult
        )
    else:
        await client.session.send_request(
            types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)), types.EmptyResult
        )


class Inbox:
    """A `message_handler` recording notifications, with an event per notification type."""

    def __init__(self) -> None:
        self.seen: list[IncomingMessage] = []
        self._events: dict[type[Any], anyio.Event] = {}

    def arrived(self, kind: type[Any]) -> anyio.Event:
        return self._events.setdefault(kind, anyio.Event())

    async def __call__(self, message: IncomingMessage) -> None:
        self.seen.append(message)
        self.arrived(type(message)).set()


async def test_log_notifications_honour_the_level_set_by_logging_set_level(served: tuple[Runtime, str]) -> None:
    _, url = served
    levels: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        levels.append(params.level)

    async with Client(url, mode="legacy", logging_callback=on_log) as client:
        await set_level(client, "warning")
        await client.call_tool("test_tool_with_logging", {})
        quiet = list(levels)
        await set_level(client, "info")
        await client.call_tool("test_tool_with_logging", {})

    assert quiet == []
    assert levels == ["info", "info", "info"]


async def test_a_prompt_change_reaches_a_connected_handshake_client(served: tuple[Runtime, str]) -> None:
    _, url = served
    inbox = Inbox()

    async with Client(url, mode="legacy", message_handler=inbox) as watcher, Client(url, mode="legacy") as actor:
        before = [p.name for p in (await watcher.list_prompts()).prompts]
        # The notification rides the watcher's standalone GET stream, which its client opens in
        # the background; until then a notification has nowhere to go, so trigger again.
        with anyio.fail_after(DEADLINE_S):
            while not inbox.arrived(types.PromptListChangedNotification).is_set():
                await actor.call_tool("test_trigger_prompt_change", {})
                with anyio.move_on_after(0.5):
                    await inbox.arrived(types.PromptListChangedNotification).wait()
        after = [p.name for p in (await watcher.list_prompts()).prompts]

    assert after == before
    assert "test_dynamic_prompt" not in after


async def test_a_resource_update_reaches_only_the_connection_that_subscribed(served: tuple[Runtime, str]) -> None:
    runtime, url = served
    subscribed, bystander = Inbox(), Inbox()

    async with (
        Client(url, mode="legacy", message_handler=subscribed) as a,
        Client(url, mode="legacy", message_handler=bystander) as b,
    ):
        await subscribe(a, WATCHED_URI)
        await b.list_resources()
        # As above: retry until the subscriber's standalone stream is there to carry it.
        with anyio.fail_after(DEADLINE_S):
            while not subscribed.arrived(types.ResourceUpdatedNotification).is_set():
                runtime.catalog.resource_updated(WATCHED_URI)
                with anyio.move_on_after(0.5):
                    await subscribed.arrived(types.ResourceUpdatedNotification).wait()
        await subscribe(a, WATCHED_URI, on=False)

    assert not any(isinstance(m, types.ResourceUpdatedNotification) for m in bystander.seen)
