"""Shared fixtures for the end-to-end tests: real servers on loopback, real clients."""

from __future__ import annotations

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
    """`toolkiln serve --conformance-fixtures` over `transport`."""
    with serve_http("--conformance-fixtures", transport=transport, cwd=workdir) as server:
        yield server


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
