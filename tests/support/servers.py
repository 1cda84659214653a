"""Launch real `toolkiln serve` processes on loopback and find out where they listen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CLIENTS_DIR = ROOT / "tests" / "clients"
NODE_BIN = CLIENTS_DIR / "node_modules" / ".bin"


def toolkiln_command(*args: str) -> list[str]:
    """`toolkiln …` run with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "server", *args]


def node_env() -> dict[str, str]:
    """Environment for the npm clients: node 22 from tests/clients first on PATH, a writable HOME."""
    if not (NODE_BIN / "node").exists():
        raise RuntimeError(f"npm clients are not installed in {CLIENTS_DIR}: run `npm ci` there (make test does this)")
    env = dict(os.environ)
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    home = ROOT / ".toolkiln-test-home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    return env


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in list(self.stderr_lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


@contextmanager
def serve_http(
    *extra: str,
    transport: str = "http",
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    launcher: Sequence[str] | None = None,
) -> Iterator[RunningServer]:
    """Start `toolkiln serve --transport http|sse --port 0 EXTRA…` and yield once it is listening.

    `launcher` replaces `python -m server` (a test's own entry point that prepares the process).
    """
    prefix = list(launcher) if launcher is not None else toolkiln_command()
    command = [*prefix, "serve", "--transport", transport, "--port", "0", *extra]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    lines: list[str] = []
    found: dict[str, object] = {}
    ready = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            if not ready.is_set():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "serving" and "url" in event:
                    found.update(event)
                    ready.set()

    reader = threading.Thread(target=pump, daemon=True, name="toolkiln-stderr (pump)")
    reader.start()
    try:
        if not ready.wait(timeout):
            process.kill()
            raise RuntimeError("toolkiln did not start listening:\n" + "\n".join(lines[-30:]))
        url = str(found["url"]).replace("0.0.0.0", "127.0.0.1")
        server = RunningServer(process=process, url=url, port=int(str(found["port"])), stderr_lines=lines)
        _wait_healthy(server.base, timeout)
        yield server
    finally:
        _stop(process)
        # Drain to EOF, then close: an open pipe would surface later as a ResourceWarning.
        reader.join(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _wait_healthy(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base}/healthz never answered")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def run_node(
    args: Sequence[str], *, timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an npm-installed binary (by name in node_modules/.bin) or `node SCRIPT`."""
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=node_env(), cwd=cwd or CLIENTS_DIR
    )
