"""The OpenAPI executor against a real upstream on loopback: every parameter style, every body
kind, and every response shape, checked by what the upstream actually received."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import mcp_types as types
import pytest

from tests.tools.openapi.conftest import LOOPBACK, PNG_1X1, LocalServer, UpstreamFactory, plan
from tools.errors import UpstreamFailure
from tools.model import CallContext, Principal, ToolResult
from tools.openapi.errors import RequestRefused, UpstreamError, UpstreamUnreachable
from tools.openapi.executor import make_executor
from tools.openapi.plan import BodyField, BodyPlan, OperationPlan, ParamPlan
from tools.openapi.upstream import Upstream

pytestmark = pytest.mark.anyio

CONTEXT = CallContext(principal=Principal(id="test"))
PRIMITIVE, ARRAY, OBJECT = 5, [3, 4, 5], {"R": 100, "G": 200}


async def run(upstream: Upstream, operation: OperationPlan, **arguments: Any) -> ToolResult:
    result = await make_executor(operation, upstream)(arguments, CONTEXT)
    assert isinstance(result, ToolResult)
    return result


def param(name: str, location: str, style: str, explode: bool, **extra: Any) -> ParamPlan:
    return ParamPlan(name=name, arg=name, location=location, style=style, explode=explode, **extra)  # type: ignore[arg-type]


# --- path ---------------------------------------------------------------------------------------

PATH_STYLES = [
    pytest.param("simple", False, PRIMITIVE, "5", id="simple-primitive"),
    pytest.param("simple", False, ARRAY, "3,4,5", id="simple-array"),
    pytest.param("simple", False, OBJECT, "R,100,G,200", id="simple-object"),
    pytest.param("simple", True, OBJECT, "R=100,G=200", id="simple-object-explode"),
    pytest.param("label", False, PRIMITIVE, ".5", id="label-primitive"),
    pytest.param("label", False, ARRAY, ".3,4,5", id="label-array"),
    pytest.param("label", True, ARRAY, ".3.4.5", id="label-array-explode"),
    pytest.param("label", True, OBJECT, ".R=100.G=200", id="label-object-explode"),
    pytest.param("matrix", False, PRIMITIVE, ";id=5", id="matrix-primitive"),
    pytest.param("matrix", False, ARRAY, ";id=3,4,5", id="matrix-array"),
    pytest.param("matrix", True, ARRAY, ";id=3;id=4;id=5", id="matrix-array-explode"),
    pytest.param("matrix", False, OBJECT, ";id=R,100,G,200", id="matrix-object"),
    pytest.param("matrix", True, OBJECT, ";R=100;G=200", id="matrix-object-explode"),
]


@pytest.mark.parametrize(("style", "explode", "value", "rendered"), PATH_STYLES)
async def test_path_parameter_styles_render_as_openapi_specifies(
    echo_server: LocalServer, make_upstream: UpstreamFactory, style: str, explode: bool, value: Any, rendered: str
) -> None:
    upstream = make_upstream(echo_server.url + "/api/v2")
    await run(upstream, plan("GET", "/items/{id}", param("id", "path", style, explode)), id=value)
    assert echo_server.seen.last["raw_path"] == f"/api/v2/items/{rendered}"


async def test_path_values_are_percent_encoded_so_reserved_characters_stay_inside_the_segment(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    await run(upstream, plan("GET", "/files/{name}.txt", param("name", "path", "simple", False)), name="a b?c#d&é")
    assert echo_server.seen.last["raw_path"] == "/files/a%20b%3Fc%23d%26%C3%A9.txt"
    assert echo_server.seen.last["query"] == ""


# --- query --------------------------------------------------------------------------------------

QUERY_STYLES = [
    pytest.param("form", True, PRIMITIVE, "id=5", id="form-primitive"),
    pytest.param("form", True, ARRAY, "id=3&id=4&id=5", id="form-array-explode"),
    pytest.param("form", False, ARRAY, "id=3,4,5", id="form-array"),
    pytest.param("form", True, OBJECT, "R=100&G=200", id="form-object-explode"),
    pytest.param("form", False, OBJECT, "id=R,100,G,200", id="form-object"),
    pytest.param("spaceDelimited", False, ARRAY, "id=3%204%205", id="space-delimited"),
    pytest.param("pipeDelimited", False, ARRAY, "id=3%7C4%7C5", id="pipe-delimited"),
    pytest.param("deepObject", True, OBJECT, "id%5BR%5D=100&id%5BG%5D=200", id="deep-object"),
    pytest.param("form", True, True, "id=true", id="boolean-as-json-spelling"),
    pytest.param("form", True, "a&b=c#d", "id=a%26b%3Dc%23d", id="separators-encoded"),
]


@pytest.mark.parametrize(("style", "explode", "value", "rendered"), QUERY_STYLES)
async def test_query_parameter_styles_render_as_openapi_specifies(
    echo_server: LocalServer, make_upstream: UpstreamFactory, style: str, explode: bool, value: Any, rendered: str
) -> None:
    upstream = make_upstream(echo_server.url)
    await run(upstream, plan("GET", "/search", param("id", "query", style, explode)), id=value)
    assert echo_server.seen.last["query"] == rendered


async def test_deep_object_query_round_trips_through_a_standard_parser(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    await run(upstream, plan("GET", "/search", param("filter", "query", "deepObject", True)), filter={"a b": "x&y"})
    assert echo_server.seen.last["query_items"] == [["filter[a b]", "x&y"]]


async def test_allow_reserved_keeps_slashes_but_never_lets_a_value_start_another_pair(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    operation = plan("GET", "/search", param("q", "query", "form", True, allow_reserved=True))
    await run(upstream, operation, q="a/b:c&api_key=stolen#x")
    assert echo_server.seen.last["query"] == "q=a/b:c%26api_key%3Dstolen%23x"
    assert echo_server.seen.last["query_items"] == [["q", "a/b:c&api_key=stolen#x"]]


async def test_absent_optional_parameters_are_not_sent(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    operation = plan("GET", "/search", param("a", "query", "form", True), param("X-B", "header", "simple", False))
    await run(upstream, operation)
    assert echo_server.seen.last["query"] == ""
    assert "x-b" not in echo_server.seen.last["headers"]


# --- header and cookie --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("explode", "value", "rendered"),
    [
        pytest.param(False, PRIMITIVE, "5", id="primitive"),
        pytest.param(False, ARRAY, "3,4,5", id="array"),
        pytest.param(False, OBJECT, "R,100,G,200", id="object"),
        pytest.param(True, OBJECT, "R=100,G=200", id="object-explode"),
    ],
)
async def test_header_parameters_use_simple_style(
    echo_server: LocalServer, make_upstream: UpstreamFactory, explode: bool, value: Any, rendered: str
) -> None:
    upstream = make_upstream(echo_server.url)
    await run(upstream, plan("GET", "/h", param("X-Trace", "header", "simple", explode)), **{"X-Trace": value})
    assert echo_server.seen.last["headers"]["x-trace"] == rendered


async def test_cookie_parameters_are_sent_in_one_cookie_header_with_values_encoded(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    operation = plan("GET", "/c", param("session", "cookie", "form", True), param("theme", "cookie", "form", False))
    await run(upstream, operation, session="abc; admin=1", theme=["dark", "wide"])
    seen = echo_server.seen.last
    assert seen["headers"]["cookie"] == "session=abc%3B%20admin%3D1; theme=dark,wide"
    assert seen["cookies"] == {"session": "abc%3B%20admin%3D1", "theme": "dark,wide"}


# --- bodies -------------------------------------------------------------------------------------


async def test_json_body_fields_are_serialized_so_hostile_strings_round_trip_literally(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    body = BodyPlan("application/json", fields=(BodyField("name", "name"), BodyField("tags", "tags")))
    hostile = 'x", "role":"admin'
    await run(upstream, plan("POST", "/pets", body=body), name=hostile, tags=["a", 1, None])
    seen = echo_server.seen.last
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["body"] == {"name": hostile, "tags": ["a", 1, None]}


async def test_json_body_carried_whole_by_one_argument(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    body = BodyPlan("application/json", whole_arg="body", required=True)
    await run(upstream, plan("PUT", "/list", body=body), body=[{"a": 1}, "two"])
    assert echo_server.seen.last["body"] == [{"a": 1}, "two"]
    assert echo_server.seen.last["method"] == "PUT"


async def test_form_body_encodes_arrays_objects_and_json_properties(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    body = BodyPlan(
        "application/x-www-form-urlencoded",
        fields=(BodyField("name", "name"), BodyField("tags", "tags"), BodyField("meta", "meta")),
        encoding={"meta": {"contentType": "application/json"}},
    )
    await run(upstream, plan("POST", "/form", body=body), name="a b&c=d", tags=["x", "y"], meta={"k": [1]})
    seen = echo_server.seen.last
    assert seen["media"] == "application/x-www-form-urlencoded"
    assert seen["body"] == {"name": ["a b&c=d"], "tags": ["x", "y"], "meta": ['{"k":[1]}']}


async def test_multipart_body_sends_text_json_and_file_parts(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    body = BodyPlan(
        "multipart/form-data",
        fields=(
            BodyField("note", "note"),
            BodyField("meta", "meta"),
            BodyField(arg="upload", property="file", is_file=True),
        ),
        encoding={"file": {"contentType": "image/png"}},
    )
    await run(
        upstream,
        plan("POST", "/upload", body=body),
        note='line "one"\r\nline two',
        meta={"size": 1},
        upload=base64.b64encode(PNG_1X1).decode(),
    )
    seen = echo_server.seen.last
    assert seen["media"] == "multipart/form-data"
    assert seen["body"] == {"note": ['line "one"\r\nline two'], "meta": ['{"size":1}']}
    (part,) = seen["files"]["file"]
    assert part["content_type"] == "image/png"
    assert base64.b64decode(part["base64"]) == PNG_1X1


async def test_multipart_file_argument_that_is_not_base64_is_refused_before_sending(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url)
    body = BodyPlan("multipart/form-data", fields=(BodyField("file", "file", is_file=True),))
    with pytest.raises(RequestRefused, match="base64"):
        await run(upstream, plan("POST", "/upload", body=body), file="not base64!")
    assert echo_server.seen.requests == []


async def test_binary_body_is_sent_as_decoded_bytes(echo_server: LocalServer, make_upstream: UpstreamFactory) -> None:
    upstream = make_upstream(echo_server.url)
    body = BodyPlan("application/octet-stream", whole_arg="data", required=True)
    await run(upstream, plan("POST", "/raw", body=body), data=base64.b64encode(b"hello").decode())
    assert echo_server.seen.last["body"] == "hello"


# --- responses ----------------------------------------------------------------------------------


async def test_json_object_response_becomes_structured_content_plus_text(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    result = await run(make_upstream(echo_server.url), plan("GET", "/anything"))
    assert result.structured is not None
    assert result.structured["raw_path"] == "/anything"
    (block,) = result.content
    assert isinstance(block, types.TextContent)
    assert json.loads(block.text) == result.structured


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        pytest.param(
            "array", lambda r: r.structured is None and r.content[0].text == "[1,2,3]", id="json-array-as-text"
        ),
        pytest.param("gzip-json", lambda r: r.structured["packed"] is True, id="gzip-decoded"),
        pytest.param("deflate-raw", lambda r: r.structured == {"raw": "deflate"}, id="raw-deflate-decoded"),
        pytest.param("png", lambda r: isinstance(r.content[0], types.ImageContent), id="image-block"),
        pytest.param("binary", lambda r: isinstance(r.content[0], types.EmbeddedResource), id="binary-as-resource"),
        pytest.param("ansi", lambda r: r.content[0].text == "plain [31mred[0m text", id="control-chars-stripped"),
        pytest.param("empty", lambda r: "204" in r.content[0].text, id="no-content"),
    ],
)
async def test_response_shapes_map_to_content_blocks(
    echo_server: LocalServer, make_upstream: UpstreamFactory, kind: str, check: Any
) -> None:
    result = await run(make_upstream(echo_server.url), plan("GET", f"/content/{kind}"))
    assert not result.is_error
    assert check(result)


async def test_unsupported_content_encoding_is_a_tool_error(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    with pytest.raises(UpstreamFailure, match="unsupported Content-Encoding 'br'"):
        await run(make_upstream(echo_server.url), plan("GET", "/content/brotli"))


async def test_non_2xx_is_an_error_with_status_and_a_bounded_body(
    echo_server: LocalServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(echo_server.url, max_error_body_chars=200)
    operation = plan(
        "GET", "/status/{code}", param("code", "path", "simple", False), param("pad", "query", "form", True)
    )
    with pytest.raises(UpstreamError) as caught:
        await run(upstream, operation, code=503, pad=100_000)
    assert caught.value.status == 503
    assert caught.value.message.startswith("Upstream returned HTTP 503 Service Unavailable: error body for 503")
    assert len(caught.value.body) <= 200


async def test_a_closed_port_is_reported_as_unreachable_not_a_crash(make_upstream: UpstreamFactory) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UpstreamUnreachable, match="Could not connect"):
        await run(make_upstream(f"http://127.0.0.1:{port}"), plan("GET", "/x"))


# --- the credential seam ------------------------------------------------------------------------


async def test_inject_hook_runs_last_and_its_headers_reach_the_upstream(echo_server: LocalServer) -> None:
    seen: list[httpx.Request] = []

    async def inject(request: httpx.Request) -> None:
        seen.append(request)
        request.headers["Authorization"] = "Bearer injected"

    upstream = Upstream(echo_server.url, allow_private_hosts=LOOPBACK, inject=inject)
    try:
        body = BodyPlan("application/json", fields=(BodyField("a", "a"),))
        await run(upstream, plan("POST", "/secure", body=body), a=1)
    finally:
        await upstream.aclose()
    (request,) = seen
    assert request.content == b'{"a":1}'
    assert echo_server.seen.last["headers"]["authorization"] == "Bearer injected"


async def test_calls_share_one_pooled_connection(echo_server: LocalServer, make_upstream: UpstreamFactory) -> None:
    upstream = make_upstream(echo_server.url)
    operation = plan("GET", "/pooled")
    for _ in range(5):
        await run(upstream, operation)
    ports = {r["headers"].get("host") for r in echo_server.seen.requests}
    assert ports == {f"127.0.0.1:{echo_server.port}"}
    # Seen from the upstream: every call arrived over the same client connection.
    assert len({r["client_port"] for r in echo_server.seen.requests}) == 1
