"""A real `toolkiln serve --transport http --conformance-fixtures` for the suite runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RunningServer, serve_http


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per module, run from a scratch directory so its data dir stays out of the repo."""
    workdir: Path = tmp_path_factory.mktemp("conformance")
    with serve_http("--conformance-fixtures", cwd=workdir) as server:
        yield server
    # serve_http stops the process but leaves its stderr pipe open (a ResourceWarning later);
    # close it once the reader thread has drained it.
    for thread in threading.enumerate():
        if thread.name.endswith("(pump)"):
            thread.join(timeout=10)
    if server.process.stderr is not None:
        server.process.stderr.close()
