"""Loading a spec: malformed documents fail precisely, and size bombs hit a cap (THREATS O1, O4)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tools.openapi.build import build_spec
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.spec_errors import SpecInvalid, SpecTooLarge

MINIMAL_PATHS = {"/pets": {"get": {"operationId": "listPets", "responses": {"200": {"description": "ok"}}}}}


def _spec(**top: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": MINIMAL_PATHS, **top}


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _build(path: Path, **settings: Any) -> Any:
    return build_spec(OpenApiSourceSettings(spec=str(path), base_url="https://api.example.com", **settings))


# THREATS O1 ------------------------------------------------------------------------------------

MALFORMED = [
    pytest.param("spec.yaml", "openapi: 3.0.3\npaths: {\n  /a: [", "not valid YAML", "line", id="bad-yaml"),
    pytest.param("spec.json", '{"openapi": "3.0.3", "paths": {', "not valid JSON", "line 1", id="truncated-json"),
    pytest.param(
        "spec.yaml",
        "openapi: 3.0\ninfo: {title: t, version: '1'}\npaths: {}\n",
        "quote it",
        "/openapi",
        id="float-version",
    ),
    pytest.param(
        "spec.json", json.dumps(_spec(openapi="4.0.0")), "unsupported openapi version", "/openapi", id="openapi-4"
    ),
    pytest.param(
        "spec.json", json.dumps({"swagger": "1.2", "paths": {}}), "swagger version", "/swagger", id="swagger-12"
    ),
    pytest.param("spec.json", json.dumps({"info": {}, "paths": {}}), "not an OpenAPI document", None, id="no-version"),
    pytest.param(
        "spec.json",
        json.dumps({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}}),
        "'paths' is missing",
        "/paths",
        id="paths-missing",
    ),
    pytest.param(
        "spec.json", json.dumps(_spec(paths=["/a"])), "'paths' must be an object, got array", "/paths", id="paths-list"
    ),
    pytest.param("spec.json", "[1, 2]", "must be an object, got array", None, id="top-level-array"),
    pytest.param("spec.json", '{"openapi": "3.0.3", "x": NaN}', "NaN", None, id="json-nan"),
    pytest.param("spec.json", '{"a": ' + "1" * 5000 + "}", "not usable JSON", None, id="json-5000-digit-int"),
    pytest.param("spec.json", "[" * 200_000 + "]" * 200_000, "nesting too deep", None, id="json-200k-deep"),
    pytest.param("spec.yaml", "a: &x [*x]\n", "recursive YAML alias", None, id="yaml-recursive-alias"),
    pytest.param("spec.yaml", "a: !!binary aGVsbG8=\n", "no JSON equivalent", None, id="yaml-binary"),
    pytest.param("spec.yaml", "a: !!python/object:os.system {}\n", "no JSON equivalent", None, id="yaml-python-tag"),
    pytest.param("spec.yaml", b"openapi: '3.0.3'\nx: \xff\xfe\n", "YAML", None, id="invalid-utf8"),
]


@pytest.mark.parametrize(("name", "content", "message", "where"), MALFORMED)
def test_malformed_spec_fails_with_a_precise_error(
    tmp_path: Path, name: str, content: str | bytes, message: str, where: str | None
) -> None:
    """THREATS O1: the error names the file, what is wrong and, when known, where."""
    path = _write(tmp_path, name, content)
    with pytest.raises(SpecInvalid) as caught:
        _build(path)
    assert message in caught.value.message
    assert str(path) in caught.value.message
    if where is not None:
        assert where in (caught.value.where or "")


def test_yaml_timestamps_stay_the_text_they_were(tmp_path: Path) -> None:
    """THREATS O1: a YAML date is kept as its literal string, so the tool schema is still JSON."""
    path = _write(
        tmp_path,
        "spec.yaml",
        "openapi: '3.0.3'\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n"
        "      operationId: a\n      parameters:\n        - {name: since, in: query, schema: {type: string, "
        "default: 2020-01-01, example: 2001-12-14t21:59:43.10-05:00}}\n"
        "      responses: {200: {description: ok}}\n",
    )
    built = _build(path)
    (draft,) = built.conversion.drafts
    assert draft.input_schema["properties"]["since"]["default"] == "2020-01-01"
    json.dumps(draft.input_schema)


def test_integer_response_codes_in_yaml_are_read_as_strings(tmp_path: Path) -> None:
    """`200:` unquoted is an integer key in YAML; it is still the 200 response."""
    path = _write(
        tmp_path,
        "spec.yaml",
        "openapi: '3.0.3'\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      operationId: a\n"
        "      responses:\n        200:\n          description: ok\n          content:\n"
        "            application/json:\n              schema: {type: object, properties: {n: {type: integer}}}\n",
    )
    (draft,) = _build(path).conversion.drafts
    assert draft.output_schema == {"type": "object", "properties": {"n": {"type": "integer"}}}


# THREATS O4 ------------------------------------------------------------------------------------


def test_a_50_mb_spec_is_refused_at_the_byte_cap_without_parsing(tmp_path: Path) -> None:
    """THREATS O4: the default cap (32 MiB) stops a 50 MB document before any parsing."""
    path = tmp_path / "big.json"
    with path.open("wb") as handle:
        handle.write(b'{"openapi": "3.0.3", "pad": "')
        handle.write(b"x" * (50 * 1024 * 1024))
        handle.write(b'"}')
    started = time.monotonic()
    with pytest.raises(SpecTooLarge, match="byte cap"):
        _build(path)
    assert time.monotonic() - started < 5


def test_a_configured_byte_cap_applies(tmp_path: Path) -> None:
    path = _write(tmp_path, "spec.json", json.dumps(_spec(padding="x" * 5000)))
    with pytest.raises(SpecTooLarge, match="4096-byte cap"):
        _build(path, max_spec_bytes=4096)


def test_20k_operations_exceed_the_operation_cap(tmp_path: Path) -> None:
    """THREATS O4: 20,000 operations are refused (default cap 10,000); nothing is converted."""
    paths = {f"/r{i}": {"get": {"responses": {"200": {"description": "ok"}}}} for i in range(20_000)}
    path = _write(tmp_path, "spec.json", json.dumps(_spec(paths=paths)))
    with pytest.raises(SpecTooLarge, match="more than 10000 operations"):
        _build(path)


def test_yaml_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    """THREATS O4: nine levels of ten aliases (10^9 nodes expanded) hit the expansion cap in time."""
    lines = ["openapi: '3.0.3'", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("paths: {}")
    path = _write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(SpecTooLarge, match="aliases expand"):
        _build(path)
    assert time.monotonic() - started < 5


def test_a_few_honest_yaml_aliases_are_fine(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "spec.yaml",
        "openapi: '3.0.3'\ninfo: {title: t, version: '1'}\n"
        "x-ok: &ok {description: ok}\npaths:\n  /a:\n    get:\n      operationId: a\n"
        "      responses: {'200': *ok, '201': *ok}\n",
    )
    assert len(_build(path).conversion.drafts) == 1


# Fetching a spec from a URL ---------------------------------------------------------------------


class _SpecServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SpecHandler)
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []


class _SpecHandler(BaseHTTPRequestHandler):
    server: _SpecServer

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, headers, body = self.server.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def spec_server() -> Iterator[_SpecServer]:
    server = _SpecServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _SpecServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_a_spec_is_fetched_from_a_url_and_relative_servers_resolve_against_it(spec_server: _SpecServer) -> None:
    spec_server.routes["/api/openapi.json"] = (200, {}, json.dumps(_spec(servers=[{"url": "/v2"}])).encode())
    built = build_spec(OpenApiSourceSettings(spec=_url(spec_server, "/api/openapi.json")))
    assert built.base_url == _url(spec_server, "/v2")
    assert [d.name for d in built.conversion.drafts] == ["listPets"]


def test_a_spec_url_over_the_cap_is_refused_from_its_content_length(spec_server: _SpecServer) -> None:
    spec_server.routes["/big.json"] = (200, {"Content-Length": str(10**9)}, b"{}")
    with pytest.raises(SpecTooLarge, match="Content-Length"):
        build_spec(OpenApiSourceSettings(spec=_url(spec_server, "/big.json")))


def test_a_spec_url_that_redirects_is_not_followed(spec_server: _SpecServer) -> None:
    spec_server.routes["/moved.json"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    with pytest.raises(SpecInvalid, match="redirected"):
        build_spec(OpenApiSourceSettings(spec=_url(spec_server, "/moved.json")))
    assert spec_server.hits == ["/moved.json"]
