"""`toolkiln demo`: the bookshelf API on loopback, served through toolkiln as MCP tools.

The API runs on its own thread and event loop, as a real upstream would run elsewhere, and the
gateway reaches it over real HTTP through the same OpenAPI source and executor as any spec. The
source allowlists exactly 127.0.0.1, the one private address the demo needs.
"""

from __future__ import annotations

import socket
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
from tools.model import Tool
from tools.openapi.convert import convert_document, resolve_base_url
from tools.openapi.document import parse_document
from tools.openapi.errors import BaseUrlRefused
from tools.openapi.executor import make_executor
from tools.openapi.loader import load_spec
from tools.openapi.refs import RefResolver
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.upstream import Upstream

__all__ = ["DEMO_SOURCE", "demo_api", "demo_spec", "install_demo_source", "install_openapi_source", "run_demo"]

DEMO_SOURCE = "bookshelf"
log = structlog.get_logger("toolkiln.demo")


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


def install_openapi_source(runtime: Runtime, settings: OpenApiSourceSettings) -> Upstream:
    """Convert the spec `settings` names and register its tools; returns the upstream to close.

    Raises:
        SetupError: the spec cannot be loaded, or the base URL is missing or refused.
    """
    loaded = load_spec(settings.spec, max_bytes=settings.max_spec_bytes, max_yaml_nodes=settings.max_yaml_nodes)
    resolver = RefResolver(loaded.data, loaded.uri)
    document = parse_document(
        loaded.data, origin=loaded.origin, uri=loaded.uri, resolver=resolver, max_operations=settings.max_operations
    )
    base_url, base_url_from = resolve_base_url(document, settings, loaded.uri)
    if base_url is None:
        raise BaseUrlRefused(f"{settings.source_name}: {base_url_from}")
    conversion = convert_document(document, resolver, settings, base_url=base_url, base_url_from=base_url_from)
    upstream = Upstream.from_settings(base_url, settings)
    source = settings.source_name
    tools = [
        Tool(
            name=draft.name,
            title=draft.title,
            description=draft.description,
            input_schema=draft.input_schema,
            output_schema=draft.output_schema,
            annotations=draft.annotations,
            tags=draft.tags,
            executor=make_executor(draft.plan, upstream),
            source=source,
        )
        for draft in conversion.drafts
    ]
    runtime.registry.replace_source(source, tools)
    return upstream


def install_demo_source(runtime: Runtime, spec: Path, base_url: str) -> Upstream:
    """The bookshelf spec as the `bookshelf` source, calling the API at `base_url`."""
    settings = OpenApiSourceSettings(
        name=DEMO_SOURCE, spec=str(spec), base_url=base_url, allow_private_hosts=("127.0.0.1",)
    )
    return install_openapi_source(runtime, settings)


async def _serve_demo(settings: Settings, spec: Path, base_url: str, transport: TransportName) -> None:
    runtime = Runtime(settings)
    upstream = install_demo_source(runtime, spec, base_url)
    log.info("demo_api", url=base_url, tools=len(runtime.registry.tools()), transport=transport)
    try:
        await serve(runtime, transport)
    finally:
        await upstream.aclose()


def run_demo(transport: TransportName, *, port: int | None, api_port: int, data_dir: Path | None) -> None:
    """Start the API, serve it through toolkiln until the client leaves (stdio) or a signal (HTTP)."""
    import anyio

    with (
        tempfile.TemporaryDirectory(prefix="toolkiln-demo-") as scratch,
        demo_spec() as spec,
        demo_api(api_port) as url,
    ):
        http = HttpSettings() if port is None else HttpSettings(port=port)
        settings = Settings(server=ServerSettings(data_dir=data_dir or Path(scratch)), http=http)
        anyio.run(_serve_demo, settings, spec, url, transport)
