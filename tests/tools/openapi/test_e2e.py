"""OpenAPI tools end to end: a real MCP client over Streamable HTTP, a real toolkiln server, the
converter's tools for a Swagger 2.0 and an OpenAPI 3.1 spec, and a real upstream on loopback.

Every argument kind is checked by what the upstream received; every failure kind comes back as
an `isError` result while the server keeps serving.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from server.runtime import Runtime
from tests.e2e.inprocess import make_runtime, serve_in_process
from tests.tools.openapi.conftest import PNG_1X1, HostileServer, LocalServer, TableResolver, plan
from tools.model import Tool
from tools.openapi.executor import make_executor
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.source import OpenApiSource
from tools.openapi.upstream import Upstream, UpstreamLimits

pytestmark = pytest.mark.anyio

ANY_OBJECT = {"type": "object"}

SWAGGER_2 = {
    "swagger": "2.0",
    "info": {"title": "Echo (Swagger 2.0)", "version": "1"},
    "basePath": "/v2",
    "paths": {
        "/items/{itemId}": {
            "get": {
                "operationId": "getItem",
                "parameters": [
                    {"name": "itemId", "in": "path", "required": True, "type": "string"},
                    {
                        "name": "tags",
                        "in": "query",
                        "type": "array",
                        "items": {"type": "string"},
                        "collectionFormat": "multi",
                    },
                    {
                        "name": "ids",
                        "in": "query",
                        "type": "array",
                        "items": {"type": "integer"},
                        "collectionFormat": "pipes",
                    },
                    {"name": "X-Trace", "in": "header", "type": "string"},
                ],
                "responses": {"200": {"description": "echo", "schema": ANY_OBJECT}},
            }
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "consumes": ["application/json"],
                "parameters": [
                    {
                        "name": "item",
                        "in": "body",
                        "required": True,
                        "schema": {"$ref": "#/definitions/Item"},
                    }
                ],
                "responses": {"201": {"description": "echo", "schema": ANY_OBJECT}},
            }
        },
        "/forms": {
            "post": {
                "operationId": "postForm",
                "consumes": ["application/x-www-form-urlencoded"],
                "parameters": [
                    {"name": "name", "in": "formData", "type": "string", "required": True},
                    {"name": "count", "in": "formData", "type": "integer"},
                ],
                "responses": {"200": {"description": "echo", "schema": ANY_OBJECT}},
            }
        },
        "/uploads": {
            "post": {
                "operationId": "upload",
                "consumes": ["multipart/form-data"],
                "parameters": [
                    {"name": "file", "in": "formData", "type": "file", "required": True},
                    {"name": "note", "in": "formData", "type": "string"},
                ],
                "responses": {"200": {"description": "echo", "schema": ANY_OBJECT}},
            }
        },
    },
    "definitions": {
        "Item": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
        }
    },
}

OPENAPI_31 = """
openapi: 3.1.0
info: {title: Echo (OpenAPI 3.1), version: "1"}
paths:
  /things/{id}:
    get:
      operationId: getThing
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
        - name: filter
          in: query
          style: deepObject
          explode: true
          schema: {type: object, properties: {color: {type: string}, size: {type: integer}}}
        - {name: sid, in: cookie, schema: {type: string}}
        - {name: X-Trace, in: header, schema: {type: string}}
      responses:
        "200": {description: echo, content: {application/json: {schema: {type: object}}}}
  /things/{id}/label:
    get:
      operationId: getLabel
      parameters:
        - name: id
          in: path
          required: true
          style: label
          explode: true
          schema: {type: array, items: {type: string}}
      responses:
        "200": {description: echo, content: {application/json: {schema: {type: object}}}}
  /things:
    post:
      operationId: createThing
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Thing"}
      responses:
        "201": {description: echo, content: {application/json: {schema: {type: object}}}}
  /forms:
    post:
      operationId: postThingForm
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                colors: {type: array, items: {type: string}}
                note: {type: [string, "null"]}
      responses:
        "200": {description: echo, content: {application/json: {schema: {type: object}}}}
  /files:
    put:
      operationId: putFile
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              properties:
                file: {type: string, contentMediaType: image/png}
                meta: {type: object, properties: {alt: {type: string}}}
            encoding:
              file: {contentType: image/png}
      responses:
        "200": {description: echo, content: {application/json: {schema: {type: object}}}}
  /status/{code}:
    get:
      operationId: failWith
      parameters:
        - {name: code, in: path, required: true, schema: {type: integer}}
      responses:
        "200": {description: never, content: {text/plain: {schema: {type: string}}}}
components:
  schemas:
    Thing:
      type: object
      required: [name]
      properties:
        name: {type: string}
        parts: {type: array, items: {$ref: "#/components/schemas/Thing"}}
"""


def _source(runtime: Runtime, spec: Path, name: str, base_url: str) -> OpenApiSource:
    settings = OpenApiSourceSettings(
        name=name, spec=str(spec), base_url=base_url, allow_private_hosts=("127.0.0.1",), watch=False
    )
    source = OpenApiSource(settings, runtime.registry)
    source.load()
    runtime.closers.append(source.aclose)
    return source


@pytest.fixture
async def client(tmp_path: Path, echo_server: LocalServer) -> AsyncIterator[Client]:
    """An MCP client of a toolkiln HTTP server serving both specs against the echo API."""
    swagger = tmp_path / "swagger2.json"
    swagger.write_text(json.dumps(SWAGGER_2))
    oas31 = tmp_path / "oas31.yaml"
    oas31.write_text(OPENAPI_31)
    runtime = make_runtime(tmp_path / "data")
    _source(runtime, swagger, "swagger2", echo_server.url + "/v2")
    _source(runtime, oas31, "oas31", echo_server.url)
    async with serve_in_process(runtime) as url, Client(url) as connected:
        yield connected


async def call(client: Client, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    result = await client.call_tool(name, arguments)
    assert isinstance(result, types.CallToolResult)
    return result


def seen_by_upstream(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_both_specs_are_listed_as_tools(client: Client) -> None:
    names = {tool.name for tool in (await client.list_tools()).tools}
    assert {"getItem", "createItem", "postForm", "upload"} <= names
    assert {"getThing", "getLabel", "createThing", "postThingForm", "putFile", "failWith"} <= names


# --- Swagger 2.0 ------------------------------------------------------------------------------


async def test_swagger2_path_query_and_header_reach_the_upstream(client: Client, echo_server: LocalServer) -> None:
    seen = seen_by_upstream(
        await call(client, "getItem", {"itemId": "a b", "tags": ["x", "y"], "ids": [1, 2], "X-Trace": "t-1"})
    )
    assert seen["raw_path"] == "/v2/items/a%20b"
    assert seen["query"] == "tags=x&tags=y&ids=1%7C2"
    assert seen["headers"]["x-trace"] == "t-1"


async def test_swagger2_json_body_parameter(client: Client) -> None:
    result = await call(client, "createItem", {"name": "widget", "qty": 3})
    seen = seen_by_upstream(result)
    assert (seen["method"], seen["raw_path"], seen["body"]) == ("POST", "/v2/items", {"name": "widget", "qty": 3})


async def test_swagger2_form_data_body(client: Client) -> None:
    seen = seen_by_upstream(await call(client, "postForm", {"name": "n&m", "count": 2}))
    assert seen["media"] == "application/x-www-form-urlencoded"
    assert seen["body"] == {"name": ["n&m"], "count": ["2"]}


async def test_swagger2_file_upload_is_a_multipart_file_part(client: Client) -> None:
    upload = base64.b64encode(PNG_1X1).decode()
    seen = seen_by_upstream(await call(client, "upload", {"file": upload, "note": "cover"}))
    assert seen["media"] == "multipart/form-data"
    assert seen["body"] == {"note": ["cover"]}
    assert base64.b64decode(seen["files"]["file"][0]["base64"]) == PNG_1X1


# --- OpenAPI 3.1 ------------------------------------------------------------------------------


async def test_oas31_path_deep_object_cookie_and_header_reach_the_upstream(client: Client) -> None:
    arguments = {"id": 7, "filter": {"color": "red", "size": 2}, "sid": "s-1", "X-Trace": "t-2"}
    seen = seen_by_upstream(await call(client, "getThing", arguments))
    assert seen["raw_path"] == "/things/7"
    assert seen["query_items"] == [["filter[color]", "red"], ["filter[size]", "2"]]
    assert seen["cookies"] == {"sid": "s-1"}
    assert seen["headers"]["x-trace"] == "t-2"


async def test_oas31_label_style_path_array(client: Client) -> None:
    seen = seen_by_upstream(await call(client, "getLabel", {"id": ["a", "b"]}))
    assert seen["raw_path"] == "/things/.a.b/label"


async def test_oas31_recursive_json_body(client: Client) -> None:
    body = {"name": "root", "parts": [{"name": "leaf", "parts": []}]}
    seen = seen_by_upstream(await call(client, "createThing", body))
    assert seen["body"] == body


async def test_oas31_form_body_with_array(client: Client) -> None:
    seen = seen_by_upstream(await call(client, "postThingForm", {"colors": ["red", "blue"], "note": "hi"}))
    assert seen["body"] == {"colors": ["red", "blue"], "note": ["hi"]}


async def test_oas31_multipart_with_file_and_json_part(client: Client) -> None:
    upload = base64.b64encode(PNG_1X1).decode()
    seen = seen_by_upstream(await call(client, "putFile", {"file": upload, "meta": {"alt": "x"}}))
    assert seen["body"] == {"meta": ['{"alt":"x"}']}
    (part,) = seen["files"]["file"]
    assert part["content_type"] == "image/png"


# --- errors over the wire ---------------------------------------------------------------------


async def test_upstream_error_status_is_an_is_error_result_and_the_server_keeps_serving(client: Client) -> None:
    result = await call(client, "failWith", {"code": 502})
    assert result.is_error
    text = result.content[0]
    assert isinstance(text, types.TextContent)
    assert text.text.startswith("Upstream returned HTTP 502 Bad Gateway: error body for 502")
    assert not (await call(client, "getThing", {"id": 1})).is_error


async def test_path_traversal_argument_is_an_is_error_result(client: Client, echo_server: LocalServer) -> None:
    result = await call(client, "getItem", {"itemId": "../../admin"})
    assert result.is_error
    assert "must not contain '/'" in result.content[0].text  # type: ignore[union-attr]
    assert echo_server.seen.requests == []


@pytest.fixture
async def hostile_client(
    tmp_path: Path, hostile_server: HostileServer, echo_server: LocalServer
) -> AsyncIterator[Client]:
    """Hand-made tools against the hostile upstream, one per failure kind, behind a real server."""
    runtime = make_runtime(tmp_path / "data")
    limits = UpstreamLimits(read_timeout_s=0.3, max_response_bytes=64 * 1024, max_connections=1, pool_timeout_s=2)
    hostile = Upstream(hostile_server.url, limits=limits, allow_private_hosts=["127.0.0.1"])
    patient = Upstream(hostile_server.url, limits=UpstreamLimits(max_connections=1), allow_private_hosts=["127.0.0.1"])
    blocked = Upstream(
        f"http://internal.example.test:{echo_server.port}",
        resolver=TableResolver({"internal.example.test": ["127.0.0.1"]}),
    )
    no_args: dict[str, Any] = {"type": "object", "properties": {}}

    def tool(name: str, upstream: Upstream, path: str, **meta: Any) -> Tool:
        executor = make_executor(plan("GET", path), upstream)
        return Tool(name=name, description=name, input_schema=no_args, executor=executor, source="hostile", meta=meta)

    runtime.registry.replace_source(
        "hostile",
        [
            tool("stalls", hostile, "/stall"),
            tool("floods", hostile, "/endless-chunked"),
            tool("bombs", hostile, "/gzip-bomb"),
            tool("ok", hostile, "/ok"),
            tool("internal", blocked, "/"),
            tool("outlived", patient, "/stall", timeout_s=0.3),
            tool("patient_ok", patient, "/ok"),
        ],
    )
    try:
        async with serve_in_process(runtime) as url, Client(url) as connected:
            yield connected
    finally:
        for upstream in (hostile, patient, blocked):
            await upstream.aclose()


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        pytest.param("stalls", "Upstream timed out (read) after 0.3 s", id="read-timeout"),
        pytest.param("floods", "Upstream response too large: more than 65536 bytes after decoding", id="endless-body"),
        pytest.param("bombs", "Upstream response too large: more than 65536 bytes after decoding", id="gzip-bomb"),
        pytest.param(
            "internal",
            "Request to host 'internal.example.test' blocked: resolves to a private or reserved address",
            id="egress-blocked",
        ),
        pytest.param("outlived", "Tool 'outlived' timed out after 0.3 s", id="pipeline-deadline"),
    ],
)
async def test_upstream_failures_are_tool_errors_and_the_next_call_succeeds(
    hostile_client: Client, tool: str, message: str
) -> None:
    result = await call(hostile_client, tool, {})
    assert result.is_error
    assert result.content[0].text == message  # type: ignore[union-attr]
    # One pooled connection per upstream: the follow-up only works if the failed call released it.
    follow_up = "patient_ok" if tool == "outlived" else "ok"
    assert (await call(hostile_client, follow_up, {})).structured_content == {"ok": True}
