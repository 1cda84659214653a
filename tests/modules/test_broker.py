"""The egress broker (THREATS G3, S4, S6, S8): only declared origins, no module-set credentials,
no redirects, capped responses; the declared call carries the injected credential, and the secret
the upstream echoes back never reaches the module."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from modules.broker import Broker, BrokerLimits, EgressRefused, EgressRequest
from modules.sandbox import start_worker
from tests.modules.sandbox.support import report_for, spec_for

pytestmark = pytest.mark.anyio

SECRET = "sk-test-4c1d9e0b7a"


class Upstream(BaseHTTPRequestHandler):
    """A local API: echoes request headers, redirects, and sends an oversized body."""

    seen: list[dict[str, str]] = []  # noqa: RUF012 - shared by the handler instances of one server

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        if self.path.startswith("/big"):
            body = b"x" * (256 * 1024)
        else:
            body = json.dumps({"headers": dict(self.headers.items()), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", f"session={SECRET}")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def upstream() -> Iterator[str]:
    Upstream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class BearerInjection:
    async def inject(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {SECRET}"

    def scrub(self, text: str) -> str:
        return text.replace(SECRET, "[redacted]")


async def inject_for(origin: str, handles: tuple[str, ...]) -> BearerInjection:
    assert handles == ("api_token",)
    return BearerInjection()


def broker_for(origin: str) -> Broker:
    limits = BrokerLimits(max_response_bytes=64 * 1024, timeout_s=5.0)
    return Broker([origin], credentials=["api_token"], injector=inject_for, limits=limits)


async def test_the_declared_call_succeeds_with_the_credential_injected_and_its_echo_scrubbed(upstream: str) -> None:
    broker = broker_for(upstream)
    try:
        response = await broker(EgressRequest(module="m@1", method="GET", url=f"{upstream}/v1/items?q=1"))
    finally:
        await broker.aclose()

    assert response.status == 200
    assert Upstream.seen[-1]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in response.body.decode()
    assert "Bearer [redacted]" in response.body.decode()
    assert "set-cookie" not in {name.lower() for name in response.headers}


@pytest.mark.parametrize(
    ("path_or_url", "headers", "reason"),
    [
        pytest.param("http://127.0.0.2:9/", {}, "origin", id="undeclared-host"),
        pytest.param("http://169.254.169.254/latest/meta-data/", {}, "origin", id="cloud-metadata"),
        pytest.param("https://{host}/", {}, "origin", id="declared-host-other-scheme"),
        pytest.param("http://user:pw@{host}/", {}, "invalid", id="userinfo"),
        pytest.param("file:///etc/passwd", {}, "invalid", id="file-url"),
        pytest.param("/redirect", {}, "redirect", id="redirect-to-metadata"),
        pytest.param("/ok", {"Authorization": "Bearer mine"}, "header", id="module-sets-authorization"),
        pytest.param("/ok", {"authorization": "x"}, "header", id="module-sets-authorization-lowercase"),
        pytest.param("/ok", {"X-Api-Key": "mine"}, "header", id="module-sets-api-key"),
        pytest.param("/ok", {"Cookie": "a=b"}, "header", id="module-sets-cookie"),
        pytest.param("/ok", {"Host": "evil.example"}, "header", id="module-sets-host"),
        pytest.param("/ok", {"X-Trace": "a\r\nX-Injected: 1"}, "header", id="crlf-in-header"),
        pytest.param("/big", {}, "too_large", id="response-over-the-cap"),
    ],
)
async def test_the_broker_refuses(upstream: str, path_or_url: str, headers: dict[str, str], reason: str) -> None:
    host = upstream.split("://", 1)[1]
    url = path_or_url.format(host=host) if "://" in path_or_url else upstream + path_or_url
    broker = broker_for(upstream)
    try:
        with pytest.raises(EgressRefused) as refused:
            await broker(EgressRequest(module="m@1", method="GET", url=url, headers=headers))
    finally:
        await broker.aclose()

    assert refused.value.reason == reason
    assert SECRET not in refused.value.message
    if reason in ("origin", "invalid", "header"):
        assert Upstream.seen == []  # refused before anything was sent


def test_an_allowlist_entry_with_a_path_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme://host:port only"):
        Broker(["https://api.example.com/v1"])


@pytest.mark.parametrize("tier", ["full", "fallback"])
async def test_a_sandboxed_module_reaches_its_api_only_through_the_broker(upstream: str, tier: str) -> None:
    broker = broker_for(upstream)
    worker = await start_worker(spec_for("broker_client"), broker=broker, report=report_for(tier))
    try:
        ok = await worker.call("fetch", {"url": f"{upstream}/v1/items"})
        stolen = await worker.call("fetch", {"url": f"{upstream}/v1", "headers": {"Authorization": "Bearer x"}})
        elsewhere = await worker.call("fetch", {"url": "http://127.0.0.1:1/"})
        redirected = await worker.call("fetch", {"url": f"{upstream}/redirect"})
        big = await worker.call("fetch", {"url": f"{upstream}/big"})
    finally:
        await worker.stop()
        await broker.aclose()

    assert ok.structured is not None
    assert ok.structured["status"] == 200
    assert SECRET not in json.dumps(ok.structured)
    assert Upstream.seen[0]["authorization"] == f"Bearer {SECRET}"
    assert [r.structured and r.structured["refused"] for r in (stolen, elsewhere, redirected, big)] == [
        "header",
        "origin",
        "redirect",
        "too_large",
    ]
