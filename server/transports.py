"""Serving the MCP server over stdio, SSE and Streamable HTTP."""

from __future__ import annotations

from typing import Literal

import anyio
import structlog
import uvicorn
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import EventStore
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import build_server
from server.config import HttpSettings
from server.event_store import InMemoryEventStore, SessionScopes
from server.http_guard import JsonRpcGuard
from server.identity.http import protect
from server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.pipeline.subjects import METRICS_ENDPOINT
from server.readiness import audit_health
from server.runtime import Runtime
from server.stdio_guard import guarded_stdio_server
from server.version import __version__

__all__ = ["TransportName", "build_http_app", "build_sse_app", "serve", "transport_security"]

TransportName = Literal["stdio", "sse", "http"]
log = structlog.get_logger("toolkiln.transport")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_RETRY_MS = 100
METRICS_PATH = "/metrics"


def transport_security(http: HttpSettings) -> TransportSecuritySettings:
    """Origin and Host allowlists; loopback-only unless the config lists more."""
    hosts = list(http.allowed_hosts) or [f"{name}:*" for name in _LOOPBACK]
    origins = list(http.allowed_origins) or [f"http://{name}:*" for name in _LOOPBACK]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def _health_routes(runtime: Runtime) -> list[Route]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(_: Request) -> Response:
        storage_ok = runtime.storage is not None and await runtime.storage.ping()
        audit = await audit_health(runtime.ledger)
        ready = storage_ok and audit != "degraded"
        body = {
            "status": "ready" if ready else "degraded",
            "storage": storage_ok,
            "audit": audit,
            "tools": len(runtime.registry.tools()),
            "registry_version": runtime.registry.version,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        # With [auth] on, the auth middleware guards this path like the MCP endpoint; the policy
        # then decides (`endpoint:metrics`: admin, or a role a rule grants it to, e.g. a scraper's
        # API token). Without [auth] it is loopback development and stays open.
        if runtime.settings.auth.enabled:
            principal = runtime.identity.of_request(request)
            if not runtime.pipeline.is_visible(METRICS_ENDPOINT, principal):
                return JSONResponse({"error": "forbidden"}, status_code=403)
        return Response(runtime.ledger.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route(METRICS_PATH, metrics, methods=["GET"]),
    ]


def build_http_app(runtime: Runtime, *, event_store: EventStore | None = None) -> ASGIApp:
    """Streamable HTTP at `http.path` (both protocol eras) plus health endpoints.

    SSE streams are resumable (`Last-Event-ID`) from a bounded in-memory store unless another
    store is given; the retry hint tells clients to come back quickly.
    """
    http = runtime.settings.http
    server = build_server(runtime)
    app = server.streamable_http_app(
        streamable_http_path=http.path,
        json_response=http.json_response,
        event_store=event_store if event_store is not None else InMemoryEventStore(),
        retry_interval=_RETRY_MS,
        max_request_body_size=http.max_body_bytes,
        transport_security=transport_security(http),
        host=http.host,
        custom_starlette_routes=_health_routes(runtime),
    )
    # Bearer authentication (when [auth] is on) sits inside the framing guard, around the MCP path
    # and the metrics endpoint.
    authed = protect(SessionScopes(app), runtime, paths=(http.path, METRICS_PATH))
    return JsonRpcGuard(
        authed, paths=(http.path,), max_body_bytes=http.max_body_bytes, security=transport_security(http)
    )


def build_sse_app(runtime: Runtime) -> ASGIApp:
    """The legacy HTTP+SSE transport: GET /sse opens the stream, POST /messages/ carries requests."""
    http = runtime.settings.http
    server = build_server(runtime)
    sse = SseServerTransport(
        "/messages/", security_settings=transport_security(http), max_request_body_size=http.max_body_bytes
    )

    async def handle_sse(scope: Scope, receive: Receive, send: Send) -> None:
        async with sse.connect_sse(scope, receive, send) as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    class _SseEndpoint:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await handle_sse(scope, receive, send)

    routes: list[Route | Mount] = [
        Route("/sse", _SseEndpoint(), methods=["GET"]),
        Mount("/messages/", app=sse.handle_post_message),
        *_health_routes(runtime),
    ]
    app = protect(Starlette(routes=routes), runtime, paths=("/sse", "/messages/", METRICS_PATH))
    # /sse too: its GET gets the Host/Origin answer (421/403) before authentication can answer 401.
    return JsonRpcGuard(
        app, paths=("/sse", "/messages/"), max_body_bytes=http.max_body_bytes, security=transport_security(http)
    )


async def serve(runtime: Runtime, transport: TransportName, *, event_store: EventStore | None = None) -> None:
    """Run until the client disconnects (stdio) or the process is signalled (HTTP)."""
    async with runtime.running():
        if transport == "stdio":
            await _serve_stdio(runtime)
            return
        app = build_sse_app(runtime) if transport == "sse" else build_http_app(runtime, event_store=event_store)
        await _serve_uvicorn(runtime, app, transport)


async def _serve_stdio(runtime: Runtime) -> None:
    server = build_server(runtime)
    log.info("serving", transport="stdio", tools=len(runtime.registry.tools()))
    # Each line gets the same strict framing checks and size cap as an HTTP body.
    async with guarded_stdio_server(max_line_bytes=runtime.settings.http.max_body_bytes) as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def _serve_uvicorn(runtime: Runtime, app: ASGIApp, transport: str) -> None:
    http = runtime.settings.http
    config = uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        # uvicorn exposes no start-up event; polling its flag is the documented way to wait.
        while not server.started:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        for listener in server.servers:
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                path = http.path if transport == "http" else "/sse"
                log.info("serving", transport=transport, url=f"http://{host}:{port}{path}", port=port)

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await server.serve()
        tg.cancel_scope.cancel()
