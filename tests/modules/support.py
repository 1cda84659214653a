"""Helpers for the lifecycle tests: a local upstream, fixture modules copied into a data dir,
a list-changed watcher, and the `toolkiln modules` CLI run as a separate process."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import anyio
import mcp_types as types
from mcp.client.session import IncomingMessage

from tests.support.servers import toolkiln_command

FIXTURES = Path(__file__).parent / "fixtures"
# The origin the fixture modules are written against; rewritten to the test's upstream on copy.
PLACEHOLDER_ORIGIN = "http://127.0.0.1:8099"
DEADLINE_S = 20


class _Weather(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/v1/now":
            self.send_error(404)
            return
        city = parse_qs(url.query).get("city", ["?"])[0]
        body = json.dumps({"temp_c": 21, "city": city}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def weather_upstream() -> Iterator[str]:
    """A weather API on 127.0.0.1; yields its origin (`http://127.0.0.1:PORT`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Weather)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def place_module(data_dir: Path, name: str, version: str, *, origin: str = PLACEHOLDER_ORIGIN) -> Path:
    """Copy a fixture module into `data_dir/modules/NAME/VERSION/`, pointing it at `origin`."""
    target = data_dir / "modules" / name / version
    shutil.copytree(FIXTURES / name / version, target)
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml"):
            path.write_text(path.read_text().replace(PLACEHOLDER_ORIGIN, origin))
    return target


def write_config(data_dir: Path, extra: str = "") -> Path:
    config = data_dir.parent / "toolkiln.toml"
    config.write_text(f'[server]\ndata_dir = "{data_dir}"\n\n[modules]\npoll_interval_s = 0.2\n{extra}')
    return config


async def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`toolkiln modules ARGS --config CONFIG` in its own process (as an operator runs it)."""
    command = toolkiln_command("modules", *args, "--config", str(config))
    result = await anyio.run_process(command, check=False, stdin=subprocess.DEVNULL)
    return subprocess.CompletedProcess(
        command, result.returncode, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    )


class ListChanged:
    """A client `message_handler` counting tools/list_changed notifications."""

    def __init__(self) -> None:
        self.count = 0
        self._arrived = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.count += 1
            self._arrived.set()
            self._arrived = anyio.Event()

    async def wait_for(self, count: int) -> None:
        """Until at least `count` notifications have arrived (or the deadline passes)."""
        with anyio.fail_after(DEADLINE_S):
            while self.count < count:
                await self._arrived.wait()
