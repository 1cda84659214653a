"""Module credentials end to end (THREATS C1, G3, S4, S8): a hand-written module declares where its
credentials go, the operator stores the suite's canary with `toolkiln credentials set`, and the
module is validated, approved and activated with `toolkiln modules` before the server starts.

Everything is real: the toolkiln HTTP server on loopback with SDK clients authenticated as two
principals, the sandboxed worker, the egress broker, the encrypted store, and two local APIs on
127.0.0.1 that record what reached them. The upstream must receive the canary exactly where the
manifest says; the module, its results, the logs and the audit must never hold it.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import mcp_types as types
import pytest
import structlog
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from credentials.masked import Secret
from credentials.vault import Vault
from modules.source import install_modules
from server.config import ModulesSettings, ServerSettings, Settings
from server.identity.settings import HttpAuthSettings
from server.identity.tokens import TokenStore
from server.logs import REDACTED, configure_logging
from server.runtime import Runtime
from tests.conftest import LeakWatch, find_leaks
from tests.e2e.inprocess import serve_in_process
from tests.modules.support import FIXTURES, write_config
from tests.support.servers import toolkiln_command

pytestmark = pytest.mark.anyio

WEATHER_PLACEHOLDER, MIRROR_PLACEHOLDER = "http://127.0.0.1:8099", "http://127.0.0.1:8098"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Upstream:
    """A local API recording each request: `/v1/now`, `/echo` (what it got), `/redirect`, `/big`."""

    origin: str = ""
    redirect_to: str = ""
    # Requests hold the canary: kept out of reprs, so a failing assertion cannot print it.
    requests: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                headers = {name.lower(): value for name, value in self.headers.items()}
                seen: dict[str, Any] = {"path": url.path, "query": parse_qs(url.query), "headers": headers}
                upstream.requests.append(seen)
                if url.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{upstream.redirect_to}/steal")
                    self.end_headers()
                    return
                body = b"x" * (2 * 1024 * 1024) if url.path == "/big" else json.dumps(self._answer(seen)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, seen: dict[str, Any]) -> dict[str, Any]:
                if seen["path"] == "/v1/now":
                    return {"temp_c": 21, "city": seen["query"].get("city", ["?"])[0]}
                return {"you_sent": seen}

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def paths(self) -> list[str]:
        return [request["path"] for request in self.requests]


@contextmanager
def running(upstream: Upstream) -> Iterator[Upstream]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), upstream.handler())
    upstream.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Gateway:
    url: str
    data_dir: Path
    settings: Settings
    weather: Upstream
    mirror: Upstream
    tokens: dict[str, str]
    logs: io.StringIO
    watch: LeakWatch

    async def call(self, tool: str, arguments: dict[str, Any], *, principal: str = "alice") -> types.CallToolResult:
        headers = {"Authorization": f"Bearer {self.tokens[principal]}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            Client(streamable_http_client(self.url, http_client=http)) as client,
        ):
            result = await client.call_tool(tool, arguments)
            self.watch.observe("tools/list", (await client.list_tools()).model_dump(mode="json"))
        self.watch.observe(f"result of {tool} for {principal}", result.model_dump(mode="json"))
        assert result.is_error is False, text_of(result)
        return result

    def store(self, name: str, owner: str, origin: str, value: str) -> None:
        vault = Vault.open(self.settings.credentials, self.data_dir)
        try:
            vault.put(name, owner, origin, "token", {}, {"value": value})
        finally:
            vault.close()


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


def place_keyed(data_dir: Path, weather: str, mirror: str) -> None:
    target = data_dir / "modules" / "keyed" / "1.0.0"
    shutil.copytree(FIXTURES / "keyed" / "1.0.0", target)
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml"):
            text = path.read_text().replace(WEATHER_PLACEHOLDER, weather).replace(MIRROR_PLACEHOLDER, mirror)
            path.write_text(text)


async def toolkiln(config: Path, *args: str, stdin: str | None = None) -> None:
    """`toolkiln ARGS --config CONFIG` in its own process, as an operator runs it."""
    command = toolkiln_command(*args, "--config", str(config))
    done = await anyio.run_process(command, input=None if stdin is None else stdin.encode(), check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")


@asynccontextmanager
async def gateway(root: Path, canary: str, watch: LeakWatch) -> AsyncIterator[Gateway]:
    with running(Upstream()) as weather, running(Upstream()) as mirror:
        weather.redirect_to = mirror.origin
        data_dir = root / "data"
        place_keyed(data_dir, weather.origin, mirror.origin)
        config = write_config(data_dir)
        await toolkiln(config, "credentials", "set", "weather_key", "--origin", weather.origin, stdin=canary + "\n")
        for step in (("validate",), ("approve", "--yes"), ("activate",)):
            await toolkiln(config, "modules", step[0], "keyed@1.0.0", *step[1:])
        settings = Settings(
            server=ServerSettings(data_dir=data_dir),
            auth=HttpAuthSettings(api_tokens=True),
            modules=ModulesSettings(poll_interval_s=0.2),
        )
        logs = io.StringIO()
        root_logger = logging.getLogger()
        saved_handlers, saved_level = root_logger.handlers[:], root_logger.level
        configure_logging("debug", stream=logs)
        runtime = Runtime(settings)
        source = install_modules(runtime)
        try:
            async with serve_in_process(runtime) as url:
                assert source.serving() == {"keyed": "1.0.0"}
                assert runtime.storage is not None
                store = TokenStore(runtime.storage.db)
                tokens = {who: (await store.create(who, ("admin",)))[0] for who in ("alice", "bob")}
                running_gateway = Gateway(url, data_dir, settings, weather, mirror, tokens, logs, watch)
                running_gateway.store("mirror_key", "alice", mirror.origin, f"{canary}-alice")
                yield running_gateway
        finally:
            watch.observe("gateway log", logs.getvalue())
            structlog.reset_defaults()
            root_logger.handlers[:] = saved_handlers
            root_logger.setLevel(saved_level)


@pytest.fixture(scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory, canary: str, leak_watch: LeakWatch) -> AsyncIterator[Gateway]:
    async with gateway(tmp_path_factory.mktemp("module-credentials"), canary, leak_watch) as running_gateway:
        yield running_gateway


async def test_the_declared_call_carries_the_stored_key_where_the_manifest_places_it(gw: Gateway, canary: str) -> None:
    before = len(gw.weather.requests)

    result = await gw.call("weather_now", {"city": "Oslo"})

    assert result.structured_content == {"city": "Oslo", "temp_c": 21}
    (request,) = gw.weather.requests[before:]
    assert Secret(request["headers"].get("x-weather-key", "")) == Secret(canary)
    assert "authorization" not in request["headers"]  # the MCP client's own token is never forwarded


async def test_a_module_hunting_for_its_credential_finds_nothing_and_the_echo_comes_back_scrubbed(
    gw: Gateway, canary: str
) -> None:
    before = len(gw.weather.requests)

    result = await gw.call("snoop", {})

    found = result.structured_content
    assert found is not None
    assert find_leaks(canary, [("snoop", json.dumps(found))]) == []
    assert set(found["env"]) <= {"PWD", "LC_CTYPE"}
    # The API did receive the key and echo it; the broker removed it before the module saw it.
    (request,) = gw.weather.requests[before:]
    assert Secret(request["headers"]["x-weather-key"]) == Secret(canary)
    assert json.loads(found["echo"])["you_sent"]["headers"]["x-weather-key"] == REDACTED


async def test_a_credential_goes_only_to_its_own_origin_and_each_caller_sends_their_own(
    gw: Gateway, canary: str
) -> None:
    weather_before, mirror_before = len(gw.weather.requests), len(gw.mirror.requests)

    alice = (await gw.call("fetch", {"url": f"{gw.mirror.origin}/echo"})).structured_content
    nobody = (await gw.call("fetch", {"url": f"{gw.mirror.origin}/echo"}, principal="bob")).structured_content
    # Bob's key is stored for the weather API's origin: the store refuses it for the mirror.
    gw.store("mirror_key", "bob", gw.weather.origin, f"{canary}-bob")
    misbound = (await gw.call("fetch", {"url": f"{gw.mirror.origin}/echo"}, principal="bob")).structured_content
    weather = (await gw.call("fetch", {"url": f"{gw.weather.origin}/echo"}, principal="bob")).structured_content

    assert alice is not None
    assert alice["status"] == 200
    (to_mirror,) = gw.mirror.requests[mirror_before:]
    assert Secret(to_mirror["query"]["key"][0]) == Secret(f"{canary}-alice")
    assert "x-weather-key" not in to_mirror["headers"]  # the weather key never goes to the mirror
    assert json.loads(alice["body"])["you_sent"]["query"]["key"] == [REDACTED]
    refused = f"credential 'mirror_key' cannot be used for {gw.mirror.origin}"
    assert nobody == {"refused": "credential", "message": refused}
    assert misbound == nobody
    assert f"is bound to {gw.weather.origin}, not to {gw.mirror.origin}" in gw.logs.getvalue()
    # Only the mirror's own key goes to the mirror; the weather API gets the weather key only.
    assert weather is not None
    assert weather["status"] == 200
    (to_weather,) = gw.weather.requests[weather_before:]
    assert "key" not in to_weather["query"]
    assert Secret(to_weather["headers"]["x-weather-key"]) == Secret(canary)


@pytest.mark.parametrize(
    ("url", "headers", "reason", "reaches"),
    [
        pytest.param("http://127.0.0.1:1/v1/now", {}, "origin", None, id="undeclared-host"),
        pytest.param("http://localhost:{weather_port}/v1/now", {}, "origin", None, id="declared-api-by-another-name"),
        pytest.param("{weather}/redirect", {}, "redirect", "weather", id="redirect-to-the-other-origin"),
        pytest.param("{weather}/echo", {"Authorization": "Bearer x"}, "header", None, id="module-sets-authorization"),
        pytest.param("{weather}/echo", {"X-Weather-Key": "x"}, "header", None, id="module-sets-the-injected-header"),
        pytest.param("{mirror}/echo?key=guess", {}, "credential", None, id="module-sets-the-injected-query-key"),
        pytest.param("{weather}/big", {}, "too_large", "weather", id="response-over-the-cap"),
    ],
)
async def test_the_broker_refuses_on_the_module_path(
    gw: Gateway, canary: str, url: str, headers: dict[str, str], reason: str, reaches: str | None
) -> None:
    target = url.format(
        weather=gw.weather.origin, mirror=gw.mirror.origin, weather_port=gw.weather.origin.rsplit(":", 1)[1]
    )
    before = {"weather": list(gw.weather.paths()), "mirror": list(gw.mirror.paths())}

    result = await gw.call("fetch", {"url": target, "headers": headers})

    assert result.structured_content is not None
    assert result.structured_content["refused"] == reason, result.structured_content["message"]
    after = {"weather": gw.weather.paths(), "mirror": gw.mirror.paths()}
    # Refused before sending: nothing reached either API; refused on the answer: only the one asked.
    assert {name: len(paths) - len(before[name]) for name, paths in after.items()} == {
        "weather": int(reaches == "weather"),
        "mirror": 0,
    }
    assert "/steal" not in after["mirror"]
    assert find_leaks(canary, [("refusal", text_of(result))]) == []


async def test_validating_a_module_with_credentials_needs_no_store_in_the_cli(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    place_keyed(data_dir, WEATHER_PLACEHOLDER, MIRROR_PLACEHOLDER)
    config = write_config(data_dir)

    command = toolkiln_command("modules", "validate", "keyed@1.0.0", "--config", str(config))
    done = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)

    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert not (data_dir / "credentials.db").exists()
