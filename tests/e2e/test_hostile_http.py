"""Hostile protocol input over Streamable HTTP and legacy SSE, sent with raw httpx.

Every refusal is checked for its status, its JSON-RPC code and `id: null`, and is followed by a
normal call in both eras: a refused message never costs the server its next answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import httpx
import pytest

from tests.e2e.raw import (
    ACCEPT,
    SIMPLE_TEXT,
    assert_http_still_serves,
    call_body,
    initialize_body,
    modern_headers,
    open_session,
    rpc_payload,
)
from tests.support.servers import RunningServer

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
FIVE_MIB = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def session(client: httpx.Client, http_server: RunningServer) -> dict[str, str]:
    return open_session(client, http_server.url)


def _assert_refused(response: httpx.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    message = response.json()
    assert message["jsonrpc"] == "2.0"
    assert message["id"] is None
    assert message["error"]["code"] == code


def _deep(depth: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"x":' + b"[" * depth + b"]" * depth + b"}}"


MALFORMED = [
    # THREATS P1: not JSON, truncated, bare values.
    pytest.param(b"hello", PARSE_ERROR, id="not-json"),
    pytest.param(b'{"jsonrpc":"2.0","id":1,', PARSE_ERROR, id="truncated"),
    pytest.param(b"", PARSE_ERROR, id="empty-body"),
    pytest.param(b"42", INVALID_REQUEST, id="bare-number"),
    pytest.param(b'"x"', INVALID_REQUEST, id="bare-string"),
    pytest.param(b"null", INVALID_REQUEST, id="bare-null"),
    pytest.param(b"{}", INVALID_REQUEST, id="empty-object"),
    # THREATS P2: envelope abuse.
    pytest.param(b'{"jsonrpc":"1.0","id":7,"method":"tools/list"}', INVALID_REQUEST, id="jsonrpc-1.0"),
    pytest.param(b'{"id":7,"method":"tools/list"}', INVALID_REQUEST, id="jsonrpc-missing"),
    pytest.param(b'{"jsonrpc":2.0,"id":7,"method":"tools/list"}', INVALID_REQUEST, id="jsonrpc-as-number"),
    pytest.param(b'{"jsonrpc":"2.0","id":{},"method":"tools/list"}', INVALID_REQUEST, id="id-object"),
    pytest.param(b'{"jsonrpc":"2.0","id":[7],"method":"tools/list"}', INVALID_REQUEST, id="id-array"),
    pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"tools/list"}', INVALID_REQUEST, id="id-bool"),
    pytest.param(b'{"jsonrpc":"2.0","id":7.5,"method":"tools/list"}', INVALID_REQUEST, id="id-float"),
    pytest.param(b'{"jsonrpc":"2.0","id":7.0,"method":"tools/list"}', INVALID_REQUEST, id="id-integral-float"),
    pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"tools/list"}', INVALID_REQUEST, id="id-null-request"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":7}', INVALID_REQUEST, id="method-int"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":null}', INVALID_REQUEST, id="method-null"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":[]}', INVALID_REQUEST, id="params-array"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":"x"}', INVALID_REQUEST, id="params-string"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"result":{},"error":{}}', INVALID_REQUEST, id="result-and-error"),
    pytest.param(b'{"jsonrpc":"2.0","result":{}}', INVALID_REQUEST, id="response-without-id"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"error":{"code":"x"}}', INVALID_REQUEST, id="error-without-code"),
    # THREATS P3: batches are rejected whole.
    pytest.param(json.dumps([call_body(7), call_body(8)]).encode(), INVALID_REQUEST, id="batch-of-calls"),
    pytest.param(b"[]", INVALID_REQUEST, id="empty-batch"),
    # THREATS P4: parser bombs and values JSON does not have.
    pytest.param(_deep(200_000), PARSE_ERROR, id="array-nesting-200k"),
    pytest.param(b'{"a":' * 200_000 + b"1" + b"}" * 200_000, PARSE_ERROR, id="object-nesting-200k"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"tools/list"}', PARSE_ERROR, id="id-5000-digits"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":-' + b"9" * 5000 + b"}}",
        PARSE_ERROR,
        id="param-5000-digits",
    ),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":NaN}}', PARSE_ERROR, id="nan"),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":Infinity}}', PARSE_ERROR, id="infinity"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":-Infinity}}', PARSE_ERROR, id="-infinity"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"n":1e999}}', PARSE_ERROR, id="overflow-float"
    ),
    pytest.param(b'{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call"}', PARSE_ERROR, id="dup-method"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a","name":"test_simple_text"}}',
        PARSE_ERROR,
        id="dup-nested-name",
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\xff\xfe"}}', PARSE_ERROR, id="bad-utf8"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\xc0\xaf"}}', PARSE_ERROR, id="overlong"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\\ud800"}}', PARSE_ERROR, id="lone-high"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\\udc00x"}}', PARSE_ERROR, id="lone-low"
    ),
    pytest.param(
        b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"s":"\\udc00\\ud800"}}',
        PARSE_ERROR,
        id="swapped-pair",
    ),
]


@pytest.mark.parametrize(("body", "code"), MALFORMED)
def test_malformed_http_body_is_refused_with_null_id_and_the_server_keeps_serving(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str], body: bytes, code: int
) -> None:
    """THREATS P1–P4."""
    response = client.post(http_server.url, headers=session, content=body)
    _assert_refused(response, 400, code)
    assert len(response.text) < 512  # the refusal never echoes the input back
    assert_http_still_serves(client, http_server.url, session)


BAD_PARAMS = [
    pytest.param({"name": 123}, id="name-int"),
    pytest.param({"name": "test_simple_text", "arguments": "str"}, id="arguments-string"),
    pytest.param({"name": "test_simple_text", "arguments": [1]}, id="arguments-array"),
    pytest.param({"arguments": {}}, id="name-missing"),
]


@pytest.mark.parametrize("params", BAD_PARAMS)
def test_tools_call_with_malformed_params_is_invalid_params_for_that_request(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str], params: dict[str, object]
) -> None:
    """THREATS P2: the envelope is sound, so the answer carries the request's id."""
    body = {"jsonrpc": "2.0", "id": 31, "method": "tools/call", "params": params}
    response = client.post(http_server.url, headers=session, json=body)
    message = rpc_payload(response)
    assert message["id"] == 31
    assert message["error"]["code"] == INVALID_PARAMS
    assert_http_still_serves(client, http_server.url, session)


def test_a_valid_surrogate_pair_is_not_mistaken_for_a_lone_surrogate(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str]
) -> None:
    body = b'{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"_meta":{"note":"\\ud83d\\ude00"}}}'
    response = client.post(http_server.url, headers=session, content=body)
    assert response.status_code == 200
    assert "tools" in rpc_payload(response)["result"]


def test_five_mib_body_with_content_length_gets_413_before_parsing(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str]
) -> None:
    """THREATS P4: the body is not even JSON, and the answer is still 413, not a parse error."""
    response = client.post(http_server.url, headers=session, content=b"x" * FIVE_MIB)
    _assert_refused(response, 413, INVALID_REQUEST)
    assert_http_still_serves(client, http_server.url, session)


def test_five_mib_chunked_body_without_content_length_gets_413(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str]
) -> None:
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        for _ in range(FIVE_MIB // len(chunk)):
            yield chunk

    request = client.build_request("POST", http_server.url, headers=session, content=chunks())
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    _assert_refused(client.send(request), 413, INVALID_REQUEST)
    assert_http_still_serves(client, http_server.url, session)


def _text_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert "access-control-allow-origin" not in response.headers


EVIL_ORIGIN = "https://evil.example"
BROWSER_ATTACKS = [
    # THREATS P5: the guard checks Host and Origin before anything else, so body and content type
    # never change the answer.
    pytest.param({"origin": EVIL_ORIGIN}, b"", 403, id="evil-origin"),
    pytest.param({"origin": EVIL_ORIGIN}, b"[1,2]", 403, id="evil-origin-with-batch"),
    pytest.param({"origin": EVIL_ORIGIN}, b"x" * FIVE_MIB, 403, id="evil-origin-with-5mib"),
    pytest.param({"origin": EVIL_ORIGIN, "content-type": "text/plain"}, b"", 403, id="evil-origin-text-plain"),
    pytest.param({"origin": "null"}, b"", 403, id="null-origin"),
    pytest.param({"origin": "http://127.0.0.1.evil.example:80"}, b"", 403, id="loopback-prefixed-origin"),
    pytest.param({"host": "rebind.attacker.example"}, b"", 421, id="rebound-host"),
    pytest.param({"host": "127.0.0.1.nip.io:80"}, b"", 421, id="loopback-lookalike-host"),
]


@pytest.mark.parametrize(("headers", "body", "status"), BROWSER_ATTACKS)
def test_cross_site_and_rebound_requests_are_refused_before_the_body_is_read(
    client: httpx.Client,
    http_server: RunningServer,
    session: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    sent = body or json.dumps(call_body(5)).encode()
    response = client.post(http_server.url, headers={**session, **headers}, content=sent)
    _text_error(response, status)
    assert_http_still_serves(client, http_server.url, session)


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text-plain"),
        pytest.param(None, id="missing"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("application/jsonx", id="json-prefix-lookalike"),
    ],
)
def test_post_that_is_not_application_json_gets_400(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str], content_type: str | None
) -> None:
    headers = {k: v for k, v in session.items() if k != "content-type"}
    if content_type is not None:
        headers["content-type"] = content_type
    response = client.post(http_server.url, headers=headers, content=json.dumps(call_body(5)).encode())
    _assert_refused(response, 400, INVALID_REQUEST)
    assert_http_still_serves(client, http_server.url, session)


def test_cors_preflight_from_an_unlisted_origin_gets_no_allow_origin(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str]
) -> None:
    preflight = {
        "origin": EVIL_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, mcp-session-id",
    }
    response = client.options(http_server.url, headers=preflight)
    _text_error(response, 403)
    assert_http_still_serves(client, http_server.url, session)


def test_get_stream_from_an_unlisted_origin_is_refused(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str]
) -> None:
    response = client.get(http_server.url, headers={**session, "accept": "text/event-stream", "origin": EVIL_ORIGIN})
    _text_error(response, 403)
    assert_http_still_serves(client, http_server.url, session)


def test_missing_session_id_gets_400_and_unknown_session_id_gets_404(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str]
) -> None:
    without = {k: v for k, v in session.items() if k != "mcp-session-id"}
    _assert_refused(client.post(http_server.url, headers=without, json=call_body(5)), 400, INVALID_REQUEST)
    unknown = {**session, "mcp-session-id": "0" * 32}
    _assert_refused(client.post(http_server.url, headers=unknown, json=call_body(5)), 404, INVALID_REQUEST)
    assert_http_still_serves(client, http_server.url, session)


def test_terminated_session_id_gets_404(client: httpx.Client, http_server: RunningServer) -> None:
    doomed = open_session(client, http_server.url)
    assert client.delete(http_server.url, headers=doomed).status_code == 200
    _assert_refused(client.post(http_server.url, headers=doomed, json=call_body(5)), 404, INVALID_REQUEST)
    assert_http_still_serves(client, http_server.url, open_session(client, http_server.url))


@pytest.mark.parametrize(
    "version",
    [
        pytest.param("1999-01-01", id="unknown-date"),
        pytest.param("2025-11-25\r\nX: 1", id="header-injection-attempt"),
        pytest.param("latest", id="not-a-version"),
    ],
)
def test_bad_protocol_version_header_gets_400_in_both_eras(
    client: httpx.Client, http_server: RunningServer, session: dict[str, str], version: str
) -> None:
    if "\r" in version:
        # httpx refuses to send CR/LF in a header value, which is the protection that applies.
        with pytest.raises(httpx.LocalProtocolError):
            client.post(http_server.url, headers={**session, "mcp-protocol-version": version}, json=call_body(5))
        return
    handshake = client.post(http_server.url, headers={**session, "mcp-protocol-version": version}, json=call_body(5))
    assert handshake.status_code == 400, handshake.text
    modern = {**modern_headers("tools/call", "test_simple_text"), "mcp-protocol-version": version}
    body = call_body(6) | {"params": {"name": "test_simple_text", "arguments": {}}}
    stateless = client.post(http_server.url, headers=modern, json=body)
    assert stateless.status_code == 400, stateless.text
    assert_http_still_serves(client, http_server.url, session)


# --- Legacy HTTP+SSE: the same guard stands in front of POST /messages/ -----------------------

SSE_ATTACKS = [
    pytest.param({"origin": EVIL_ORIGIN}, json.dumps(call_body(5)).encode(), 403, None, id="evil-origin"),
    pytest.param({"host": "rebind.attacker.example"}, json.dumps(call_body(5)).encode(), 421, None, id="rebound-host"),
    pytest.param({"content-type": "text/plain"}, json.dumps(call_body(5)).encode(), 400, INVALID_REQUEST, id="text"),
    pytest.param({}, json.dumps([call_body(5), call_body(6)]).encode(), 400, INVALID_REQUEST, id="batch"),
    pytest.param({}, b'{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"n":NaN}}', 400, PARSE_ERROR, id="nan"),
    pytest.param({}, b'{"jsonrpc":"2.0","id":{},"method":"tools/list"}', 400, INVALID_REQUEST, id="id-object"),
    pytest.param({}, b"x" * FIVE_MIB, 413, INVALID_REQUEST, id="5mib"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("headers", "body", "status", "code"), SSE_ATTACKS)
async def test_hostile_post_to_legacy_sse_messages_is_refused_and_the_session_keeps_serving(
    sse_server: RunningServer, headers: dict[str, str], body: bytes, status: int, code: int | None
) -> None:
    """THREATS P1–P5 on the legacy transport, posted into a live session's endpoint."""
    send, receive = anyio.create_memory_object_stream[dict[str, object] | str](16)
    json_headers = {"content-type": "application/json", "accept": ACCEPT}
    async with send, receive, httpx.AsyncClient(timeout=30) as http, anyio.create_task_group() as tg:

        async def hold_stream() -> None:
            async with http.stream("GET", sse_server.url, headers={"accept": "text/event-stream"}) as stream:
                event = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                        await send.send(data if event == "endpoint" else json.loads(data))

        tg.start_soon(hold_stream)
        with anyio.fail_after(10):
            endpoint = await receive.receive()
            assert isinstance(endpoint, str)
            url = sse_server.base + endpoint
            await http.post(url, headers=json_headers, json=initialize_body())
            assert (await receive.receive())["id"] == 1  # type: ignore[index]
            await http.post(url, headers=json_headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

            response = await http.post(url, headers={**json_headers, **headers}, content=body)
            assert response.status_code == status, response.text
            assert "access-control-allow-origin" not in response.headers
            if code is not None:
                refusal = response.json()
                assert refusal["id"] is None
                assert refusal["error"]["code"] == code

            accepted = await http.post(url, headers=json_headers, json=call_body(99))
            assert accepted.status_code == 202
            reply = await receive.receive()
        assert isinstance(reply, dict)
        assert reply["id"] == 99  # nothing the refused message asked for came first
        assert reply["result"] == {"content": [{"type": "text", "text": SIMPLE_TEXT}], "isError": False}
        tg.cancel_scope.cancel()


@pytest.fixture(autouse=True)
def _server_log_stays_clean(http_server: RunningServer, sse_server: RunningServer) -> Iterator[None]:
    """No hostile input may surface as a traceback or an error-level event in the server's log."""
    marks = [(server, len(server.stderr_lines)) for server in (http_server, sse_server)]
    yield
    for server, mark in marks:
        new = server.stderr_lines[mark:]
        assert not [line for line in new if "Traceback" in line or '"level": "error"' in line]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"origin": EVIL_ORIGIN}, 403, id="evil-origin"),
        pytest.param({"host": "rebind.attacker.example"}, 421, id="rebound-host"),
    ],
)
def test_legacy_sse_stream_from_a_cross_site_or_rebound_request_is_refused(
    client: httpx.Client, sse_server: RunningServer, headers: dict[str, str], status: int
) -> None:
    """THREATS P5 on GET /sse: no stream, so no session endpoint is ever handed out."""
    response = client.get(sse_server.url, headers={"accept": "text/event-stream", **headers})
    _text_error(response, status)
    assert "session_id" not in response.text
