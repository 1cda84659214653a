"""Local upstreams on 127.0.0.1 for the HTTP executor's tests.

`echo_server`: a small Starlette API that reports exactly what it received (raw path and query,
headers, cookies, JSON/form/multipart bodies) plus status, redirect and content-type endpoints.
`hostile_server`: a raw asyncio HTTP/1.1 server that misbehaves on purpose (THREATS S6, S7):
huge, endless, lying or compressed-bomb bodies, stalls and slow drips. Both run on their own
thread and event loop for the whole session, so a misbehaving test loop cannot stop them, and
both record what they saw so a test can prove a refused request never arrived.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import subprocess
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tools.openapi.plan import OperationPlan
from tools.openapi.upstream import Upstream, UpstreamLimits
from tools.openapi.urlsafety import Resolver

LOOPBACK = ["127.0.0.1"]
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the echo API -----------------------------------------------------------------------------


@dataclass
class Seen:
    """Requests a local upstream received, oldest first."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(record)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    @property
    def last(self) -> dict[str, Any]:
        assert self.requests, "the upstream received no request"
        return self.requests[-1]


async def _describe(request: Request) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip()
    body: Any = None
    files: dict[str, list[dict[str, Any]]] = {}
    if media == "application/json":
        body = await request.json()
    elif media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        body = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                files.setdefault(key, []).append(
                    {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "base64": base64.b64encode(data).decode(),
                    }
                )
            else:
                body.setdefault(key, []).append(value)
        await form.close()
    else:
        raw = await request.body()
        body = raw.decode("utf-8", "replace") if raw else None
    return {
        "method": request.method,
        "raw_path": request.scope["raw_path"].decode("latin-1"),
        "query": request.scope["query_string"].decode("latin-1"),
        "query_items": [list(pair) for pair in request.query_params.multi_items()],
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
        "header_names": [k.decode("latin-1") for k, _ in request.scope["headers"]],
        "cookies": dict(request.cookies),
        "media": media,
        "body": body,
        "files": files,
        # The client's end of the connection: equal ports mean one reused connection.
        "client_port": request.client.port if request.client else None,
    }


def echo_app(seen: Seen) -> Starlette:
    async def echo(request: Request) -> Response:
        record = await _describe(request)
        seen.add(record)
        return JSONResponse(record)

    async def status(request: Request) -> Response:
        seen.add(await _describe(request))
        code = int(request.path_params["code"])
        text = "error body for " + str(code) + " " + "x" * int(request.query_params.get("pad", "0"))
        return PlainTextResponse(text, status_code=code)

    async def redirect(request: Request) -> Response:
        seen.add(await _describe(request))
        code = int(request.query_params.get("status", "302"))
        return RedirectResponse(request.query_params["to"], status_code=code)

    async def chain(request: Request) -> Response:
        seen.add(await _describe(request))
        hop = int(request.path_params["hop"])
        return RedirectResponse(f"/chain/{hop + 1}", status_code=302)

    async def content(request: Request) -> Response:
        seen.add(await _describe(request))
        kind = request.path_params["kind"]
        if kind == "array":
            return JSONResponse([1, 2, 3])
        if kind == "gzip-json":
            packed = gzip.compress(b'{"packed": true, "pad": "' + b"z" * 5000 + b'"}')
            return Response(packed, media_type="application/json", headers={"content-encoding": "gzip"})
        if kind == "deflate-raw":
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            packed = packer.compress(b'{"raw": "deflate"}') + packer.flush()
            return Response(packed, media_type="application/json", headers={"content-encoding": "deflate"})
        if kind == "png":
            return Response(PNG_1X1, media_type="image/png")
        if kind == "ansi":
            return PlainTextResponse("plain \x1b[31mred\x1b[0m text\x00")
        if kind == "empty":
            return Response(status_code=204)
        if kind == "brotli":
            return Response(b"\x00\x01", media_type="text/plain", headers={"content-encoding": "br"})
        return Response(b"\x00\x01binary", media_type="application/octet-stream")

    routes = [
        Route("/status/{code:int}", status, methods=["GET", "POST"]),
        Route("/redirect", redirect, methods=["GET", "POST"]),
        Route("/chain/{hop:int}", chain),
        Route("/content/{kind}", content),
        Route("/{rest:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    ]
    return Starlette(routes=routes)


@dataclass
class LocalServer:
    port: int
    seen: Seen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class _ThreadedUvicorn:
    """uvicorn on a pre-bound loopback socket, on its own thread; ready once the socket listens."""

    def __init__(self, app: Starlette) -> None:
        self.sock = _listening_socket()
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _ThreadedUvicorn:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="session")
def _echo_session() -> Iterator[LocalServer]:
    seen = Seen()
    with _ThreadedUvicorn(echo_app(seen)) as running:
        yield LocalServer(port=running.port, seen=seen)


@pytest.fixture(scope="session")
def _other_origin_session() -> Iterator[LocalServer]:
    seen = Seen()
    with _ThreadedUvicorn(echo_app(seen)) as running:
        yield LocalServer(port=running.port, seen=seen)


@pytest.fixture
def echo_server(_echo_session: LocalServer) -> LocalServer:
    """The echo API, with an empty record of requests."""
    _echo_session.seen.clear()
    return _echo_session


@pytest.fixture
def other_origin(_other_origin_session: LocalServer) -> LocalServer:
    """A second echo API on another port: another origin, for redirect and credential tests."""
    _other_origin_session.seen.clear()
    return _other_origin_session


# --- the hostile upstream ---------------------------------------------------------------------

CHUNK = 64 * 1024
GIB = 1024 * 1024 * 1024


@dataclass
class Exchange:
    """One connection to the hostile server: what was asked, how much was sent, when it closed."""

    method: str = ""
    path: str = ""
    bytes_sent: int = 0
    closed: threading.Event = field(default_factory=threading.Event)


class HostileServer:
    """A raw HTTP/1.1 server whose paths misbehave in the ways THREATS S6 and S7 list."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.sock = _listening_socket()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        with self._lock:
            return [exchange.path for exchange in self.exchanges]

    def last(self, path: str) -> Exchange:
        with self._lock:
            return next(e for e in reversed(self.exchanges) if e.path == path)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=10)
        self.sock.close()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._serve(reader, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        server = await asyncio.start_server(on_connect, sock=self.sock)
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        exchange = Exchange()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                exchange.method, target = request_line.split(" ")[:2]
                exchange.path = target.split("?", 1)[0]
                with self._lock:
                    self.exchanges.append(exchange)
                keep_open = await self._respond(exchange, reader, writer)
                if not keep_open:
                    break
                exchange = Exchange()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            exchange.closed.set()
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _send(self, exchange: Exchange, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        exchange.bytes_sent += len(data)
        await writer.drain()

    async def _until_eof(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(1024):
            pass

    async def _respond(self, exchange: Exchange, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        path = exchange.path
        send = self._send
        if path == "/ok":
            await send(
                exchange, writer, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
            )
            await send(exchange, writer, b'{"ok":true}')
            return True
        if path == "/huge-declared":
            await send(exchange, writer, f"HTTP/1.1 200 OK\r\nContent-Length: {2 * GIB}\r\n\r\n".encode())
            if exchange.method == "HEAD":  # the length of the body a GET would get; none follows
                return True
            while exchange.bytes_sent < 2 * GIB:
                await send(exchange, writer, b"\0" * CHUNK)
            return False
        if path == "/huge-undeclared":
            await send(exchange, writer, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            while exchange.bytes_sent < 2 * GIB:
                await send(exchange, writer, b"\0" * CHUNK)
            return False
        if path == "/endless-chunked":
            await send(exchange, writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                await send(exchange, writer, b"%x\r\n%s\r\n" % (CHUNK, b"a" * CHUNK))
        if path == "/endless-sse":
            await send(
                exchange,
                writer,
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            event = b"data: " + b"e" * 4000 + b"\n\n"
            while True:
                await send(exchange, writer, b"%x\r\n%s\r\n" % (len(event), event))
        if path == "/lying-length":
            await send(exchange, writer, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n")
            await send(exchange, writer, b"0123456789")
            while exchange.bytes_sent < 64 * 1024 * 1024:
                await send(exchange, writer, b"X" * CHUNK)
            return False
        if path == "/gzip-bomb":
            await send(
                exchange,
                writer,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                b"Connection: close\r\n\r\n",
            )
            packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
            zeros = b"\0" * (1024 * 1024)
            for _ in range(10 * 1024):  # 10 GiB once inflated, about 10 MB on the wire
                piece = packer.compress(zeros)
                if piece:
                    await send(exchange, writer, piece)
            await send(exchange, writer, packer.flush())
            return False
        if path == "/stall":
            await self._until_eof(reader)
            return False
        if path == "/drip":
            await send(
                exchange, writer, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            while True:
                await send(exchange, writer, b"1\r\nx\r\n")
                try:
                    await asyncio.wait_for(self._until_eof(reader), timeout=0.2)
                    return False
                except TimeoutError:
                    continue
        await send(exchange, writer, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True


@pytest.fixture(scope="session")
def hostile_server() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


# --- building upstreams and executors ---------------------------------------------------------


class TableResolver:
    """An in-memory DNS: name → addresses; `hang` names never answer (a stalled resolver)."""

    def __init__(self, table: dict[str, list[str]], hang: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.hang = hang
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host in self.hang:
            await asyncio.Event().wait()
        if host not in self.table:
            raise OSError(f"no such name {host}")
        return list(self.table[host])


UpstreamFactory = Callable[..., Upstream]


@pytest.fixture
async def make_upstream() -> AsyncIterator[UpstreamFactory]:
    """Builds `Upstream`s (loopback allowlisted unless told otherwise) and closes them afterwards."""
    made: list[Upstream] = []

    def make(
        base_url: str,
        *,
        allow: list[str] | None = None,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **limits: Any,
    ) -> Upstream:
        upstream = Upstream(
            base_url,
            limits=UpstreamLimits(**limits),
            allow_private_hosts=LOOPBACK if allow is None else allow,
            resolver=resolver,
            transport=transport,
        )
        made.append(upstream)
        return upstream

    yield make
    for upstream in made:
        await upstream.aclose()


def plan(method: str, path: str, *params: Any, **extra: Any) -> OperationPlan:
    """An `OperationPlan` in one line, for hand-made tools."""
    return OperationPlan(method=method, path=path, params=tuple(params), **extra)


@contextmanager
def http_process(command: list[str], cwd: Path, *, timeout: float = 20.0) -> Iterator[str]:
    """Run a toolkiln command that serves over HTTP; yield the MCP URL from its `serving` log event.

    Everything it opened (the process, its stderr pipe, the reader thread) is closed afterwards.
    """
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd
    )
    found: dict[str, Any] = {}
    ready = threading.Event()
    lines: list[str] = []

    def pump() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "serving" and "url" in event:
                found.update(event)
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert ready.wait(timeout), "the server did not start:\n" + "".join(lines[-20:])
        yield str(found["url"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        reader.join(timeout=5)
        assert process.stderr is not None
        process.stderr.close()
