"""THREATS S6 and S7: hostile response bodies stop at the cap on decoded bytes with memory bounded,
stalled upstreams stop at a per-phase timeout or the overall deadline, and either way the
connection is closed and its pool slot handed back."""

from __future__ import annotations

import tracemalloc
from typing import Any

import anyio
import pytest

from tests.tools.openapi.conftest import HostileServer, TableResolver, UpstreamFactory, plan
from tools.model import CallContext, Principal, ToolResult
from tools.openapi.errors import ResponseTooLarge, UpstreamTimeout, UpstreamUnreachable
from tools.openapi.executor import make_executor
from tools.openapi.upstream import Upstream

pytestmark = pytest.mark.anyio

CONTEXT = CallContext(principal=Principal(id="test"))
MIB = 1024 * 1024
CAP = 1 * MIB
# Generous against allocator noise, tiny against what the hostile bodies would need.
MEMORY_BOUND = 24 * MIB
SERVER_CLOSE_WAIT_S = 10


async def run(upstream: Upstream, path: str) -> ToolResult:
    result = await make_executor(plan("GET", path), upstream)({}, CONTEXT)
    assert isinstance(result, ToolResult)
    return result


async def wait_closed(server: HostileServer, path: str) -> int:
    """Block (on a thread) until the server saw our side close that exchange; its bytes sent."""
    exchange = server.last(path)
    closed = await anyio.to_thread.run_sync(exchange.closed.wait, SERVER_CLOSE_WAIT_S)
    assert closed, f"the connection for {path} was left open"
    return exchange.bytes_sent


S6_BODIES = [
    pytest.param("/huge-declared", id="2gb-body-with-content-length"),
    pytest.param("/huge-undeclared", id="2gb-body-close-delimited"),
    pytest.param("/endless-chunked", id="endless-chunked-stream"),
    pytest.param("/endless-sse", id="endless-sse-stream"),
    pytest.param("/gzip-bomb", id="gzip-bomb-10gb-inflated"),
]


@pytest.mark.parametrize("path", S6_BODIES)
async def test_hostile_body_is_aborted_at_the_decoded_cap_with_memory_bounded(
    hostile_server: HostileServer, make_upstream: UpstreamFactory, path: str
) -> None:
    upstream = make_upstream(hostile_server.url, max_response_bytes=CAP)
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match=f"more than {CAP} bytes after decoding"):
            await run(upstream, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND
    sent = await wait_closed(hostile_server, path)
    # The server stopped because we hung up, long before the body's end.
    assert sent < 256 * MIB


async def test_declared_length_over_the_cap_is_refused_before_reading_the_body(
    hostile_server: HostileServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(hostile_server.url, max_response_bytes=CAP)
    with pytest.raises(ResponseTooLarge):
        await run(upstream, "/huge-declared")
    assert await wait_closed(hostile_server, "/huge-declared") < 64 * MIB


async def test_head_request_is_not_judged_by_the_length_it_declares(
    hostile_server: HostileServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(hostile_server.url, max_response_bytes=CAP)
    result = await make_executor(plan("HEAD", "/huge-declared"), upstream)({}, CONTEXT)
    assert isinstance(result, ToolResult)
    assert not result.is_error


async def test_a_lying_content_length_never_yields_more_than_declared_and_the_pool_stays_usable(
    hostile_server: HostileServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(hostile_server.url, max_response_bytes=CAP, max_connections=1)
    # Bytes past the declared length on a kept-alive connection are a malformed (smuggling-shaped)
    # answer: either the declared ten bytes come back, when the excess arrives after the message was
    # complete, or the exchange fails as broken; never anything past the declared length.
    outcome: ToolResult | UpstreamUnreachable
    try:
        outcome = await run(upstream, "/lying-length")
    except UpstreamUnreachable as failed:
        outcome = failed
    if isinstance(outcome, ToolResult):
        assert outcome.content[0].text == "0123456789"  # type: ignore[union-attr]
    else:
        assert "broke off" in str(outcome)
    # The poisoned connection was closed, not pooled: the next call gets a clean answer.
    follow_up = await run(upstream, "/ok")
    assert follow_up.structured == {"ok": True}


S7_STALLS = [
    pytest.param("/stall", {"read_timeout_s": 0.3}, "read", id="connect-accepted-never-answers"),
    pytest.param("/drip", {"read_timeout_s": 0.1}, "read", id="drip-slower-than-read-timeout"),
    pytest.param(
        "/drip", {"read_timeout_s": 5.0, "total_timeout_s": 0.8}, "total", id="drip-within-read-timeout-forever"
    ),
]


@pytest.mark.parametrize(("path", "limits", "phase"), S7_STALLS)
async def test_stalled_upstream_times_out_and_releases_its_pool_slot(
    hostile_server: HostileServer, make_upstream: UpstreamFactory, path: str, limits: dict[str, Any], phase: str
) -> None:
    # One connection in the pool: the follow-up call only succeeds if the stalled one was released.
    upstream = make_upstream(hostile_server.url, max_connections=1, pool_timeout_s=2.0, **limits)
    with pytest.raises(UpstreamTimeout) as caught:
        await run(upstream, path)
    assert caught.value.phase == phase
    await wait_closed(hostile_server, path)
    follow_up = await run(upstream, "/ok")
    assert follow_up.structured == {"ok": True}


async def test_tls_handshake_stall_is_a_connect_timeout(
    hostile_server: HostileServer, make_upstream: UpstreamFactory
) -> None:
    upstream = make_upstream(f"https://127.0.0.1:{hostile_server.port}", connect_timeout_s=0.3)
    with pytest.raises(UpstreamTimeout) as caught:
        await run(upstream, "/ok")
    assert caught.value.phase == "connect"


async def test_dns_hang_is_cut_by_the_overall_deadline(make_upstream: UpstreamFactory) -> None:
    resolver = TableResolver({}, hang=frozenset({"slow-dns.example.test"}))
    upstream = make_upstream("http://slow-dns.example.test", resolver=resolver, total_timeout_s=0.3)
    with pytest.raises(UpstreamTimeout) as caught:
        await run(upstream, "/")
    assert caught.value.phase == "total"
    assert resolver.asked == ["slow-dns.example.test"]


async def test_a_cancelled_call_hands_back_its_connection(
    hostile_server: HostileServer, make_upstream: UpstreamFactory
) -> None:
    """The pipeline's deadline cancels from outside; the slot must still come back."""
    upstream = make_upstream(hostile_server.url, max_connections=1, pool_timeout_s=2.0, read_timeout_s=30.0)
    with anyio.move_on_after(0.3) as scope:
        await run(upstream, "/stall")
    assert scope.cancelled_caught
    await wait_closed(hostile_server, "/stall")
    assert (await run(upstream, "/ok")).structured == {"ok": True}
