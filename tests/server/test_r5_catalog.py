"""Resources and prompts go through the same policy, rate limits and audit as tools (THREATS R5).

Driven by the SDK `Client` against the production server with the conformance fixture catalog:
an entry the caller may not see is missing from every list, and reading, rendering, completing
or subscribing to it fails exactly as it does for an entry that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from server.app import build_server
from server.config import Settings
from server.fixtures import install_fixtures
from server.runtime import Runtime
from tests.server.audit.support import records
from tools.catalog import Resource, ResourceContents
from tools.model import CallContext

pytestmark = pytest.mark.anyio

# Readonly may not see the static text, the template instances for id "secret", nor the simple
# prompt; everything else in the catalog stays visible to it (read access).
POLICY: dict[str, Any] = {
    "rules": [
        {"id": "no-static-text", "effect": "deny", "roles": ["readonly"], "tools": ["resource:test://static-text"]},
        {
            "id": "no-secret-ids",
            "effect": "deny",
            "roles": ["readonly"],
            "tools": ["resource:test://template/*"],
            "when": {"arg": "id", "equals": "secret"},
        },
        {"id": "no-simple-prompt", "effect": "deny", "roles": ["readonly"], "tools": ["prompt:test_simple_prompt"]},
    ]
}


def runtime_for(tmp_path: Path, roles: list[str], **sections: Any) -> Runtime:
    data: dict[str, Any] = {"server": {"data_dir": str(tmp_path)}, "stdio": {"roles": roles}, "policy": POLICY}
    data.update(sections)
    runtime = Runtime(Settings.model_validate(data))
    install_fixtures(runtime)
    return runtime


@asynccontextmanager
async def client_of(runtime: Runtime) -> AsyncIterator[Client]:
    async with runtime.running(), Client(build_server(runtime), mode="legacy") as client:
        yield client


async def subscribe(client: Client, uri: str) -> None:
    # The handshake-era request itself (the client's helper warns that 2026-07-28 dropped it).
    request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
    await client.session.send_request(request, types.EmptyResult)


async def error_of(request: Any) -> types.ErrorData:
    with pytest.raises(MCPError) as caught:
        await request
    return caught.value.error


def without(error: types.ErrorData, name: str) -> str:
    """The error as the client sees it, with the name it asked about blanked out."""
    return json_of(error).replace(name, "NAME")


def json_of(error: types.ErrorData) -> str:
    return error.model_dump_json(by_alias=True, exclude_none=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_denied_resource_is_missing_from_the_list_and_reads_exactly_like_a_missing_one(
    tmp_path: Path,
) -> None:
    async with client_of(runtime_for(tmp_path, ["readonly"])) as client:
        listed = {resource.uri for resource in (await client.list_resources()).resources}
        denied = await error_of(client.read_resource("test://static-text"))
        missing = await error_of(client.read_resource("test://no-such-thing"))
        allowed = await client.read_resource("test://static-binary")
    assert "test://static-text" not in listed
    assert {"test://static-binary", "test://watched-resource"} <= listed
    assert (denied.code, denied.message, denied.data) == (-32602, "Resource not found", {"uri": "test://static-text"})
    assert without(denied, "test://static-text") == without(missing, "test://no-such-thing")
    assert isinstance(allowed.contents[0], types.BlobResourceContents)


async def test_a_denied_prompt_is_missing_from_the_list_and_renders_exactly_like_a_missing_one(
    tmp_path: Path,
) -> None:
    async with client_of(runtime_for(tmp_path, ["readonly"])) as client:
        listed = {prompt.name for prompt in (await client.list_prompts()).prompts}
        denied = await error_of(client.get_prompt("test_simple_prompt"))
        missing = await error_of(client.get_prompt("test_no_such_prompt"))
        completion_denied = await error_of(
            client.complete(
                types.PromptReference(type="ref/prompt", name="test_simple_prompt"), {"name": "x", "value": ""}
            )
        )
        completion_missing = await error_of(
            client.complete(
                types.PromptReference(type="ref/prompt", name="test_no_such_prompt"), {"name": "x", "value": ""}
            )
        )
        allowed = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
    assert "test_simple_prompt" not in listed
    assert "test_prompt_with_arguments" in listed
    assert denied.code == -32602
    assert without(denied, "test_simple_prompt") == without(missing, "test_no_such_prompt")
    assert without(completion_denied, "test_simple_prompt") == without(completion_missing, "test_no_such_prompt")
    assert [message.role for message in allowed.messages] == ["user"]


async def test_a_condition_on_a_template_variable_hides_only_the_matching_instances(tmp_path: Path) -> None:
    async with client_of(runtime_for(tmp_path, ["readonly"])) as client:
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        secret = await error_of(client.read_resource("test://template/secret/data"))
        public = await client.read_resource("test://template/42/data")
    assert "test://template/{id}/data" in templates  # visible: only some calls are refused
    assert (secret.code, secret.data) == (-32602, {"uri": "test://template/secret/data"})
    assert public.contents[0].uri == "test://template/42/data"


async def test_subscribing_to_a_denied_resource_is_refused_like_a_missing_one(tmp_path: Path) -> None:
    async with client_of(runtime_for(tmp_path, ["readonly"])) as client:
        denied = await error_of(subscribe(client, "test://static-text"))
        missing = await error_of(subscribe(client, "test://no-such-thing"))
        await subscribe(client, "test://watched-resource")
    assert without(denied, "test://static-text") == without(missing, "test://no-such-thing")


async def test_every_catalog_read_render_and_subscription_is_audited_with_its_decision(tmp_path: Path) -> None:
    async with client_of(runtime_for(tmp_path, ["readonly"])) as client:
        await client.read_resource("test://static-binary")
        await error_of(client.read_resource("test://static-text"))
        await error_of(client.read_resource("test://no-such-thing"))
        await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        await error_of(client.get_prompt("test_simple_prompt"))
        await subscribe(client, "test://watched-resource")
        await error_of(client.read_resource("test://template/secret/data"))
    outcomes = [
        (r["tool"], r["status"], r.get("rule")) for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"
    ]
    assert outcomes == [
        ("resource:test://static-binary", "allowed", "builtin:readonly-read"),
        ("resource:test://static-text", "denied", None),
        ("resource:test://no-such-thing", "unknown_tool", None),
        ("prompt:test_prompt_with_arguments", "allowed", "builtin:readonly-read"),
        ("prompt:test_simple_prompt", "denied", None),
        ("resource:test://watched-resource", "allowed", "builtin:readonly-read"),
        ("resource:test://template/{id}/data", "denied", "no-secret-ids"),
    ]
    intents = [r for r in records(tmp_path / "audit.db") if r["kind"] == "intent"]
    assert {"id": "secret"} in [r["arguments"] for r in intents]


async def test_admin_sees_and_reads_the_whole_catalog(tmp_path: Path) -> None:
    async with client_of(runtime_for(tmp_path, ["admin"])) as client:
        listed = {resource.uri for resource in (await client.list_resources()).resources}
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        text = await client.read_resource("test://static-text")
        secret = await client.read_resource("test://template/secret/data")
        simple = await client.get_prompt("test_simple_prompt")
    assert "test://static-text" in listed
    assert "test_simple_prompt" in prompts
    assert isinstance(text.contents[0], types.TextResourceContents)
    assert secret.contents[0].uri == "test://template/secret/data"
    assert simple.messages


async def test_a_rate_limit_on_resources_refuses_the_next_read_with_its_retry_details(tmp_path: Path) -> None:
    limits = {"rules": [{"name": "reads", "tools": ["resource:*"], "limit": 1, "period_s": 3600}]}
    async with client_of(runtime_for(tmp_path, ["admin"], limits=limits)) as client:
        await client.read_resource("test://static-text")
        refused = await error_of(client.read_resource("test://static-text"))
        other = await client.read_resource("test://static-binary")  # its own bucket (per caller and entry)
    assert refused.code == -32603
    assert "Rate limit 'reads' exceeded" in refused.message
    assert refused.data["error"] == "rate_limited"
    assert refused.data["retry_after_s"] >= 1
    assert other.contents
    statuses = [r["status"] for r in records(tmp_path / "audit.db") if r["kind"] == "outcome"]
    assert statuses == ["allowed", "rate_limited", "allowed"]


async def _secret(uri: str, _: Mapping[str, str], __: CallContext) -> list[ResourceContents]:
    return [types.TextResourceContents(uri=uri, text="the admin's notes")]


async def test_a_resource_tagged_admin_is_hidden_from_every_other_built_in_role(tmp_path: Path) -> None:
    runtime = runtime_for(tmp_path, ["developer"])
    secret = Resource(
        uri="notes://admin", name="admin-notes", description="d", read=_secret, source="x", tags=("admin",)
    )
    runtime.catalog.replace_source("x", resources=[secret])
    async with client_of(runtime) as client:
        listed = {resource.uri for resource in (await client.list_resources()).resources}
        refused = await error_of(client.read_resource("notes://admin"))
    assert "notes://admin" not in listed
    assert refused.data == {"uri": "notes://admin"}
