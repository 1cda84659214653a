"""Shared fixtures for the end-to-end tests: real servers on loopback, real clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters

from tests.support.servers import RunningServer, serve_http, toolkiln_command


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory for server processes, so their data dir never lands in the repo."""
    return tmp_path_factory.mktemp("toolkiln")


@contextmanager
def fixture_server(transport: str, workdir: Path) -> Iterator[RunningServer]:
    """`toolkiln serve --conformance-fixtures` over `transport`, its stderr pipe closed afterwards."""
    before = set(threading.enumerate())
    with serve_http("--conformance-fixtures", transport=transport, cwd=workdir) as server:
        readers = [t for t in threading.enumerate() if t not in before and t.name.endswith("(pump)")]
        yield server
    # serve_http stops the process but leaves its stderr pipe open, which surfaces later as a
    # ResourceWarning; close it once this server's reader thread has drained it to EOF.
    for thread in readers:
        thread.join(timeout=10)
    if server.process.stderr is not None:
        server.process.stderr.close()


@pytest.fixture(scope="module")
def http_server(workdir: Path) -> Iterator[RunningServer]:
    with fixture_server("http", workdir) as server:
        yield server


@pytest.fixture(scope="module")
def sse_server(workdir: Path) -> Iterator[RunningServer]:
    with fixture_server("sse", workdir) as server:
        yield server


@pytest.fixture(scope="module")
def stdio_command() -> list[str]:
    return toolkiln_command("serve", "--conformance-fixtures")


@pytest.fixture(scope="module")
def stdio_params(stdio_command: list[str], workdir: Path) -> StdioServerParameters:
    return StdioServerParameters(command=stdio_command[0], args=stdio_command[1:], cwd=workdir)
