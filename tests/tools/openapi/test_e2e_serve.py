"""The whole product path: `toolkiln serve --spec … --base-url …` as a real process, a real MCP
client over stdio and over Streamable HTTP, and real upstreams on loopback.

A Swagger 2.0 and an OpenAPI 3.1 spec come from the command line; a third source, against the
hostile upstream, comes from a config file so its timeouts and response cap can be tight.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.support.servers import toolkiln_command
from tests.tools.openapi.conftest import PNG_1X1, HostileServer, LocalServer, http_process
from tests.tools.openapi.test_e2e import OPENAPI_31, SWAGGER_2

pytestmark = pytest.mark.anyio

HOSTILE_SPEC = """
openapi: 3.0.3
info: {title: Hostile, version: "1"}
paths:
  /stall:
    get: {operationId: stalls, responses: {"200": {description: never}}}
  /endless-chunked:
    get: {operationId: floods, responses: {"200": {description: never}}}
  /gzip-bomb:
    get: {operationId: bombs, responses: {"200": {description: never}}}
  /ok:
    get:
      operationId: healthy
      responses:
        "200": {description: ok, content: {application/json: {schema: {type: object}}}}
"""


def write_inputs(folder: Path, echo: LocalServer, hostile: HostileServer) -> list[str]:
    """Spec files and a config in `folder`; returns the `serve` arguments that use them."""
    (folder / "swagger2.json").write_text(json.dumps(SWAGGER_2))
    (folder / "oas31.yaml").write_text(OPENAPI_31)
    (folder / "hostile.yaml").write_text(HOSTILE_SPEC)
    (folder / "toolkiln.toml").write_text(
        f"""
[[sources]]
name = "hostile"
spec = "hostile.yaml"
base_url = "{hostile.url}"
allow_private_hosts = ["127.0.0.1"]
read_timeout_s = 0.5
max_response_bytes = 65536
watch = false
"""
    )
    return [
        "--config",
        str(folder / "toolkiln.toml"),
        "--spec",
        "swagger2.json",
        "--base-url",
        f"{echo.url}/v2",
        "--spec",
        "oas31.yaml",
        "--base-url",
        echo.url,
    ]


@asynccontextmanager
async def connected(transport: str, folder: Path, args: list[str]) -> AsyncIterator[Client]:
    if transport == "stdio":
        command = toolkiln_command("serve", *args)
        params = StdioServerParameters(command=command[0], args=command[1:], cwd=folder)
        async with Client(params) as client:
            yield client
        return
    with http_process(toolkiln_command("serve", "--transport", "http", "--port", "0", *args), folder) as url:
        async with Client(url) as client:
            yield client


async def outcome(client: Client, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    result = await client.call_tool(name, arguments)
    assert isinstance(result, types.CallToolResult)
    return result


async def seen(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await outcome(client, name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_text(client: Client, name: str, arguments: dict[str, Any]) -> str:
    result = await outcome(client, name, arguments)
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_serve_spec_proxies_every_argument_kind_and_reports_upstream_failures(
    transport: str, tmp_path: Path, echo_server: LocalServer, hostile_server: HostileServer
) -> None:
    args = write_inputs(tmp_path, echo_server, hostile_server)
    async with connected(transport, tmp_path, args) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"getItem", "createItem", "postForm", "upload", "getThing", "putFile", "stalls", "healthy"} <= names

        # Swagger 2.0: path, query (multi and pipes), header, JSON body, form, file upload.
        item = await seen(client, "getItem", {"itemId": "a b?", "tags": ["x", "y"], "ids": [1, 2], "X-Trace": "t"})
        assert item == {**item, "raw_path": "/v2/items/a%20b%3F", "query": "tags=x&tags=y&ids=1%7C2"}
        assert item["headers"]["x-trace"] == "t"
        created = await seen(client, "createItem", {"name": 'x", "role":"admin', "qty": 1})
        assert created["body"] == {"name": 'x", "role":"admin', "qty": 1}
        form = await seen(client, "postForm", {"name": "n", "count": 3})
        assert form["body"] == {"name": ["n"], "count": ["3"]}
        upload = await seen(client, "upload", {"file": base64.b64encode(PNG_1X1).decode(), "note": "n"})
        assert base64.b64decode(upload["files"]["file"][0]["base64"]) == PNG_1X1

        # OpenAPI 3.1: deepObject query, cookie, header, recursive JSON body, multipart with a file.
        thing = await seen(client, "getThing", {"id": 3, "filter": {"color": "red"}, "sid": "s", "X-Trace": "u"})
        assert (thing["raw_path"], thing["query"], thing["cookies"]) == (
            "/things/3",
            "filter%5Bcolor%5D=red",
            {"sid": "s"},
        )
        body = {"name": "a", "parts": [{"name": "b"}]}
        assert (await seen(client, "createThing", body))["body"] == body
        put = await seen(client, "putFile", {"file": base64.b64encode(PNG_1X1).decode(), "meta": {"alt": "c"}})
        assert put["files"]["file"][0]["content_type"] == "image/png"

        # Failures are tool errors; the server keeps serving after each one.
        assert (await error_text(client, "failWith", {"code": 503})).startswith("Upstream returned HTTP 503")
        assert "must not be '.' or '..'" in await error_text(client, "getItem", {"itemId": ".."})
        assert await error_text(client, "stalls", {}) == "Upstream timed out (read) after 0.5 s"
        too_large = "Upstream response too large: more than 65536 bytes after decoding"
        assert await error_text(client, "floods", {}) == too_large
        assert await error_text(client, "bombs", {}) == too_large
        assert (await seen(client, "healthy", {})) == {"ok": True}
