"""Helpers for a module's own tests, which run in the sandbox against canned HTTP answers.

    from toolkiln_module import testing

    def test_weather_reads_the_temperature():
        testing.mock("GET", "https://api.weather.example:443/v1/now", json={"temp": 21})
        assert weather(city="Oslo") == {"temp": 21}

Each test starts with no mocks; a request without one raises `http.HttpError`.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from typing import Any

from . import http

__all__ = ["mock", "reset"]


def reset(*, enabled: bool = True) -> None:
    http._mocks = {} if enabled else None


def mock(
    method: str,
    url: str,
    *,
    status: int = 200,
    json: Any = None,
    text: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer `METHOD url` (query ignored) with this response for the rest of the test."""
    if http._mocks is None:
        raise RuntimeError("testing.mock is only usable while the module's tests run")
    body = jsonlib.dumps(json).encode("utf-8") if json is not None else (text or "").encode("utf-8")
    http._mocks[(method.upper(), url.split("?", 1)[0])] = http.Response(status, dict(headers or {}), body)
