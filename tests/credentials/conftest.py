"""Local upstreams on 127.0.0.1 for the credential tests: an API that echoes what it received
(headers, query, cookies), an endpoint that wants a current OAuth token, and the OAuth token
endpoint itself (client-credentials and refresh-token grants, refresh tokens rotated on use).
A second instance is "another origin" for redirect tests. Each records what it saw.
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.tools.openapi.conftest import _ThreadedUvicorn

CLIENT_ID = "client-1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class ApiState:
    """What the upstream saw and which tokens it currently honours."""

    # Everything here holds the canary: kept out of reprs, so a failing assertion cannot print it.
    secret: str = field(repr=False)
    requests: list[dict[str, Any]] = field(default_factory=list, repr=False)
    token_requests: list[dict[str, str]] = field(default_factory=list, repr=False)
    access_tokens: set[str] = field(default_factory=set, repr=False)
    refresh_tokens: set[str] = field(default_factory=set, repr=False)
    expires_in: int = 3600
    # When set, the API refuses every token, fresh ones included.
    refuse_all: bool = False
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.token_requests = []
            self.access_tokens = set()
            self.refresh_tokens = {f"rt-0-{self.secret}"}
            self.expires_in = 3600
            self.refuse_all = False

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    @property
    def last(self) -> dict[str, Any]:
        assert self.requests, "the upstream received no request"
        return self.requests[-1]


def api_app(state: ApiState) -> Starlette:
    def record(request: Request) -> dict[str, Any]:
        seen = {
            "path": request.url.path,
            "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
            "query": [list(pair) for pair in request.query_params.multi_items()],
            "cookies": dict(request.cookies),
        }
        with state.lock:
            state.requests.append(seen)
        return seen

    async def echo(request: Request) -> Response:
        # Reflects every header, as httpbin's /headers does: the injected secret comes back.
        return JSONResponse(record(request))

    async def protected(request: Request) -> Response:
        record(request)
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if state.refuse_all or presented not in state.access_tokens:
            # A careless upstream that quotes the refused token back.
            return PlainTextResponse(f"invalid token {presented}", status_code=401)
        return JSONResponse({"ok": True})

    async def redirect(request: Request) -> Response:
        record(request)
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        with state.lock:
            state.token_requests.append(form)
        grant = form.get("grant_type")
        issued: dict[str, Any] = {"token_type": "Bearer", "expires_in": state.expires_in}
        n = next(state.counter)
        if grant == "client_credentials":
            expected = base64.b64encode(f"{CLIENT_ID}:{state.secret}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
        elif grant == "refresh_token":
            with state.lock:
                if form.get("refresh_token") not in state.refresh_tokens or form.get("client_id") != CLIENT_ID:
                    return JSONResponse({"error": "invalid_grant"}, status_code=400)
                state.refresh_tokens = {f"rt-{n}-{state.secret}"}
            issued["refresh_token"] = f"rt-{n}-{state.secret}"
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        issued["access_token"] = f"at-{n}-{state.secret}"
        with state.lock:
            state.access_tokens.add(issued["access_token"])
        return JSONResponse(issued)

    return Starlette(
        routes=[
            Route("/oauth/token", token, methods=["POST"]),
            Route("/protected/{rest:path}", protected),
            Route("/redirect", redirect),
            Route("/{rest:path}", echo),
        ]
    )


@dataclass
class Api:
    port: int
    state: ApiState

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def _api_session(canary: str) -> Iterator[Api]:
    state = ApiState(secret=canary)
    with _ThreadedUvicorn(api_app(state)) as running:
        yield Api(running.port, state)


@pytest.fixture(scope="session")
def _elsewhere_session(canary: str) -> Iterator[Api]:
    state = ApiState(secret=canary)
    with _ThreadedUvicorn(api_app(state)) as running:
        yield Api(running.port, state)


@pytest.fixture
def api(_api_session: Api) -> Api:
    _api_session.state.reset()
    return _api_session


@pytest.fixture
def elsewhere(_elsewhere_session: Api) -> Api:
    """The same API on another port: another origin."""
    _elsewhere_session.state.reset()
    return _elsewhere_session
