"""`toolkiln demo`: the bookshelf API on loopback, served through toolkiln as MCP tools.

The API runs on its own thread and event loop, as a real upstream would run elsewhere, and the
gateway reaches it over real HTTP through the same OpenAPI source and executor as any spec. The
source allowlists exactly 127.0.0.1, the one private address the demo needs.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path

import structlog
import uvicorn

from server.config import HttpSettings, ServerSettings, Settings
from server.demo.api import build_demo_api
from server.runtime import Runtime
from server.transports import TransportName, serve
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.source import OpenApiSource

__all__ = ["DEMO_SOURCE", "demo_api", "demo_spec", "install_demo_source", "run_demo"]

DEMO_SOURCE = "bookshelf"
log = structlog.get_logger("toolkiln.demo")
_TERMINAL_HINT = """toolkiln demo: serving the bookshelf example API as MCP tools over stdio (for an MCP host).
To look around from this terminal instead, run in one terminal:
    toolkiln demo --transport http
and in another:
    toolkiln tools --url http://127.0.0.1:8765/mcp
    toolkiln call listBooks q=design --url http://127.0.0.1:8765/mcp
To serve a real API: toolkiln serve --spec SPEC_PATH_OR_URL --base-url https://api.example.com
Press Ctrl-D to stop."""


@contextmanager
def demo_spec() -> Iterator[Path]:
    """The bundled OpenAPI 3.1 document as a file path (package data, wherever it is installed)."""
    with as_file(files("server.demo") / "openapi.yaml") as path:
        yield path


@contextmanager
def demo_api(port: int = 0) -> Iterator[str]:
    """Run the bookshelf API on 127.0.0.1 (`port` 0 picks a free one); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    config = uvicorn.Config(build_demo_api(), log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    # Not the main thread, so uvicorn leaves signal handling to the gateway.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="demo-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def install_demo_source(runtime: Runtime, spec: Path, base_url: str) -> OpenApiSource:
    """The bookshelf spec as the `bookshelf` source, calling the API at `base_url`.

    Raises:
        SetupError: the spec does not load (a packaging fault) or the base URL is refused.
    """
    settings = OpenApiSourceSettings(
        name=DEMO_SOURCE, spec=str(spec), base_url=base_url, allow_private_hosts=("127.0.0.1",), watch=False
    )
    source = OpenApiSource(settings, runtime.registry)
    source.load()
    runtime.closers.append(source.aclose)
    return source


async def _serve_demo(settings: Settings, spec: Path, base_url: str, transport: TransportName) -> None:
    runtime = Runtime(settings)
    install_demo_source(runtime, spec, base_url)
    log.info("demo_api", url=base_url, tools=len(runtime.registry.tools()), transport=transport)
    await serve(runtime, transport)


def run_demo(transport: TransportName, *, port: int | None, api_port: int, data_dir: Path | None) -> None:
    """Start the API, serve it through toolkiln until the client leaves (stdio) or a signal (HTTP)."""
    import anyio

    if transport == "stdio" and sys.stdin.isatty():
        # Someone typed `toolkiln demo` at a terminal: stdio waits for an MCP host, so say how to look.
        print(_TERMINAL_HINT, file=sys.stderr)
    with (
        tempfile.TemporaryDirectory(prefix="toolkiln-demo-") as scratch,
        demo_spec() as spec,
        demo_api(api_port) as url,
    ):
        http = HttpSettings() if port is None else HttpSettings(port=port)
        settings = Settings(server=ServerSettings(data_dir=data_dir or Path(scratch)), http=http)
        anyio.run(_serve_demo, settings, spec, url, transport)
