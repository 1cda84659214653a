"""HTTP for modules, carried over the worker's socket to the server's egress broker.

The broker sends the request only to an origin in the manifest's allowlist, adds the module's
credentials itself, follows no redirects and caps size and time; a refusal arrives here as
`HttpError`. Setting `Authorization` (or any credential-like header) yourself is refused.
"""

from __future__ import annotations

import base64
import itertools
import json as jsonlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from . import _channel

__all__ = ["HttpError", "Response", "get", "post", "request"]

_ids = itertools.count(1)


class HttpError(Exception):
    """The broker refused the request, or the upstream could not be reached in time."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class Response:
    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status
        self.headers = dict(headers)
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> None:
        if not self.ok:
            raise HttpError(f"HTTP {self.status_code}", reason="status")

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


# Set by `toolkiln_module.testing` while the module's own tests run: canned answers instead of
# the broker, keyed by (METHOD, url without query).
_mocks: dict[tuple[str, str], Response] | None = None


def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    data: bytes | str | None = None,
    timeout: float | None = None,
) -> Response:
    method = method.upper()
    if params:
        parts = urlsplit(url)
        query = "&".join(q for q in (parts.query, urlencode(params, doseq=True)) if q)
        url = urlunsplit(parts._replace(query=query))
    sent_headers = dict(headers or {})
    body: bytes | None = None
    if json is not None:
        body = jsonlib.dumps(json).encode("utf-8")
        sent_headers.setdefault("Content-Type", "application/json")
    elif data is not None:
        body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if _mocks is not None:
        return _mocked(method, url)
    message: dict[str, Any] = {
        "op": "http",
        "id": next(_ids),
        "method": method,
        "url": url,
        "headers": sent_headers,
        "body": None if body is None else base64.b64encode(body).decode("ascii"),
        "timeout": timeout,
    }
    chan = _channel.channel()
    with chan.exchange_lock:
        chan.send(message)
        while True:
            answer = chan.recv()
            if answer.get("op") == "http_result" and answer.get("id") == message["id"]:
                break
    if not answer.get("ok"):
        raise HttpError(str(answer.get("error", "request refused")), reason=str(answer.get("reason", "error")))
    content = base64.b64decode(answer.get("body") or "")
    return Response(int(answer["status"]), answer.get("headers") or {}, content)


def _mocked(method: str, url: str) -> Response:
    assert _mocks is not None
    key = (method, url.split("?", 1)[0])
    if key not in _mocks:
        raise HttpError(f"no mock for {method} {key[1]}", reason="unmocked")
    return _mocks[key]


def get(url: str, **kwargs: Any) -> Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    return request("POST", url, **kwargs)
