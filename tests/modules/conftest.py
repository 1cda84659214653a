"""Module lifecycle tests: hand-written modules run in the real sandbox."""

from __future__ import annotations

import pytest

# The fixture modules' own tests run inside the sandbox at validation, never under this pytest.
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
