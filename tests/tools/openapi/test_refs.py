"""`$ref`s: recursion becomes `$defs` and terminates; external references are refused (O2, O3)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from jsonschema import Draft202012Validator

import tools.openapi.build as build_module
from tools.openapi.build import build_spec
from tools.openapi.convert import ToolDraft
from tools.openapi.settings import OpenApiSourceSettings


def _spec(schemas: dict[str, Any], body_ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/things": {
                "post": {
                    "operationId": "createThing",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": body_ref}}},
                    },
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": body_ref}}}}
                    },
                }
            }
        },
        "components": {"schemas": schemas},
        **extra,
    }


def _build(tmp_path: Path, spec: dict[str, Any], **settings: Any) -> Any:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return build_spec(OpenApiSourceSettings(spec=str(path), base_url="https://api.example.com", **settings))


def _only(built: Any) -> ToolDraft:
    (draft,) = built.conversion.drafts
    return draft


def _serializes(draft: ToolDraft) -> None:
    wire = types.Tool(
        name=draft.name, input_schema=draft.input_schema, output_schema=draft.output_schema, description="d"
    )
    json.loads(wire.model_dump_json(by_alias=True))


# THREATS O2 ------------------------------------------------------------------------------------


def test_self_recursive_schema_becomes_a_def_and_validates_deep_instances(tmp_path: Path) -> None:
    """THREATS O2: a tree node referring to itself is one `$defs` entry; nothing is inlined."""
    schemas = {
        "Node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            },
        }
    }
    draft = _only(_build(tmp_path, _spec(schemas, "#/components/schemas/Node")))
    assert draft.input_schema["properties"]["children"] == {"type": "array", "items": {"$ref": "#/$defs/Node"}}
    assert set(draft.input_schema["$defs"]) == {"Node"}
    validator = Draft202012Validator(draft.input_schema)
    deep: dict[str, Any] = {"name": "leaf"}
    for level in range(50):
        deep = {"name": f"n{level}", "children": [deep]}
    assert validator.is_valid({"name": "root", "children": [deep]})
    assert not validator.is_valid({"children": [{"children": [{"name": 5}]}]})
    _serializes(draft)


def test_mutual_recursion_terminates(tmp_path: Path) -> None:
    """THREATS O2: A → B → A through properties."""
    schemas = {
        "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
        "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}}},
    }
    draft = _only(_build(tmp_path, _spec(schemas, "#/components/schemas/A")))
    assert set(draft.input_schema["$defs"]) == {"A", "B"}
    assert Draft202012Validator(draft.input_schema).is_valid({"b": {"a": {"b": {}}}})
    _serializes(draft)


@pytest.mark.parametrize(
    "schemas",
    [
        pytest.param({"A": {"$ref": "#/components/schemas/A"}}, id="bare-self-reference"),
        pytest.param(
            {
                "A": {"allOf": [{"$ref": "#/components/schemas/B"}]},
                "B": {"anyOf": [{"$ref": "#/components/schemas/A"}]},
            },
            id="loop-through-allOf-anyOf",
        ),
    ],
)
def test_a_loop_without_structure_is_cut_instead_of_crashing_a_validator(tmp_path: Path, schemas: Any) -> None:
    """THREATS O2: a reference loop that never consumes the instance would recurse forever."""
    spec = _spec(schemas, "#/components/schemas/A")
    spec["paths"]["/things"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"x": {"$ref": "#/components/schemas/A"}},
    }
    built = _build(tmp_path, spec)
    draft = _only(built)
    validator = Draft202012Validator(draft.input_schema)
    assert validator.is_valid({"x": {"anything": 1}})
    (entry,) = built.conversion.report.operations
    assert any("refers to itself" in note for note in entry.notes)


def test_a_500_deep_reference_chain_converts_without_recursion_error(tmp_path: Path) -> None:
    """THREATS O2: S0 → S1 → … → S499 through properties: 500 defs, iterative conversion."""
    schemas = {
        f"S{i}": {"type": "object", "properties": {"next": {"$ref": f"#/components/schemas/S{i + 1}"}}}
        for i in range(499)
    }
    schemas["S499"] = {"type": "string"}
    draft = _only(_build(tmp_path, _spec(schemas, "#/components/schemas/S0"), max_tool_schema_bytes=10 * 1024 * 1024))
    assert len(draft.input_schema["$defs"]) == 499  # S0 itself is the top level
    # Validation walks only as deep as the instance (whose depth the transport bounds).
    instance: Any = {}
    for _ in range(20):
        instance = {"next": instance}
    validator = Draft202012Validator(draft.input_schema)
    assert validator.is_valid(instance)
    assert not validator.is_valid({"next": 5})
    _serializes(draft)


def test_a_500_deep_allof_chain_is_cut_at_the_same_instance_depth_cap(tmp_path: Path) -> None:
    """THREATS O2: 500 nested `allOf` references apply to one instance; past the cap they are cut."""
    schemas = {
        f"S{i}": {"allOf": [{"$ref": f"#/components/schemas/S{i + 1}"}, {"not": {"type": "null"}}]} for i in range(499)
    }
    schemas["S499"] = {"type": "object"}
    spec = _spec(schemas, "#/components/schemas/S0")
    spec["paths"]["/things"]["post"]["requestBody"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"x": {"$ref": "#/components/schemas/S0"}},
    }
    built = _build(tmp_path, spec, max_tool_schema_bytes=10 * 1024 * 1024)
    draft = _only(built)
    assert Draft202012Validator(draft.input_schema).is_valid({"x": {}})
    assert any("nest more than" in note for note in built.conversion.report.operations[0].notes)


def test_json_pointer_escapes_resolve(tmp_path: Path) -> None:
    """`~1` is `/` and `~0` is `~` inside a pointer; percent-encoding is undone first."""
    spec = _spec({"a~b": {"type": "object", "properties": {"n": {"type": "integer"}}}}, "#/components/schemas/a~0b")
    spec["paths"]["/other/{id}"] = {
        "get": {
            "operationId": "other",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "ok",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/paths/~1things/post/responses/200/content/application~1json/schema"}
                        }
                    },
                }
            },
        }
    }
    built = _build(tmp_path, spec)
    other = next(d for d in built.conversion.drafts if d.name == "other")
    assert other.output_schema is not None
    assert other.output_schema["properties"] == {"n": {"type": "integer"}}


def test_id_anchored_references_resolve_as_in_the_3_1_petstore(tmp_path: Path) -> None:
    """`$ref: /components/schemas/petdetails#pet_details_id` names a schema by `$id` and `$anchor`."""
    schemas = {
        "Pet": {
            "type": "object",
            "properties": {"detailsId": {"$ref": "/components/schemas/petdetails#pet_details_id"}},
        },
        "PetDetails": {
            "$id": "/components/schemas/petdetails",
            "type": "object",
            "properties": {"id": {"$anchor": "pet_details_id", "type": "integer", "format": "int64"}},
        },
    }
    spec = _spec(schemas, "#/components/schemas/Pet")
    spec["openapi"] = "3.1.0"
    draft = _only(_build(tmp_path, spec))
    (name,) = draft.input_schema["$defs"]
    assert draft.input_schema["$defs"][name] == {"type": "integer", "format": "int64"}
    assert "$id" not in json.dumps(draft.input_schema)


def test_a_dangling_local_reference_loosens_only_that_value_and_says_so(tmp_path: Path) -> None:
    schemas = {"Pet": {"type": "object", "properties": {"owner": {"$ref": "#/components/schemas/Missing"}}}}
    built = _build(tmp_path, _spec(schemas, "#/components/schemas/Pet"))
    draft = _only(built)
    assert draft.input_schema["properties"]["owner"] == {}
    assert any("Missing" in note for note in built.conversion.report.operations[0].notes)


# THREATS O3 ------------------------------------------------------------------------------------


class _Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.hits: list[str] = []


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


EXTERNAL = [
    pytest.param("http://169.254.169.254/latest/meta-data/iam#/x", id="cloud-metadata"),
    pytest.param("http://localhost:6379/", id="local-redis"),
    pytest.param("file:///etc/passwd", id="file-url"),
    pytest.param("../../secrets.yaml", id="relative-file"),
    pytest.param("secrets.yaml#/Secret", id="sibling-file"),
    pytest.param("{recorder}/schema.json", id="loopback-http"),
]


@pytest.mark.parametrize("ref", EXTERNAL)
def test_external_refs_are_refused_without_any_fetch_or_file_read(
    tmp_path: Path, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch, ref: str
) -> None:
    """THREATS O3: the operation is reported as skipped; nothing outside the spec is opened."""
    ref = ref.replace("{recorder}", f"http://127.0.0.1:{recorder.server_address[1]}")
    (tmp_path / "secrets.yaml").write_text("Secret: {type: string, description: CANARY}\n")
    loads: list[str] = []
    real = build_module.load_spec

    def spy(location: str, **kwargs: Any) -> Any:
        loads.append(location)
        return real(location, **kwargs)

    monkeypatch.setattr(build_module, "load_spec", spy)
    schemas = {"Pet": {"type": "object", "properties": {"secret": {"$ref": ref}}}}
    built = _build(tmp_path, _spec(schemas, "#/components/schemas/Pet"))
    assert built.conversion.drafts == ()
    (entry,) = built.conversion.report.operations
    assert entry.status == "skipped"
    assert "external reference refused" in (entry.reason or "")
    assert loads == [str(tmp_path / "spec.json")]
    assert recorder.hits == []


def test_an_allowlisted_external_file_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "common.yaml").write_text("Owner: {type: object, properties: {login: {type: string}}}\n")
    schemas = {"Pet": {"type": "object", "properties": {"owner": {"$ref": "common.yaml#/Owner"}}}}
    built = _build(
        tmp_path, _spec(schemas, "#/components/schemas/Pet"), allow_external_refs=(str(tmp_path / "common.yaml"),)
    )
    draft = _only(built)
    (name,) = draft.input_schema["$defs"]
    assert draft.input_schema["$defs"][name]["properties"] == {"login": {"type": "string"}}


def test_an_allowlisted_origin_is_fetched_but_no_other(tmp_path: Path, recorder: _Recorder) -> None:
    origin = f"http://127.0.0.1:{recorder.server_address[1]}"
    schemas = {"Pet": {"type": "object", "properties": {"name": {"$ref": f"{origin}/name.json"}}}}
    draft = _only(_build(tmp_path, _spec(schemas, "#/components/schemas/Pet"), allow_external_refs=(origin,)))
    assert recorder.hits == ["/name.json"]
    (name,) = draft.input_schema["$defs"]
    assert draft.input_schema["$defs"][name] == {"type": "string"}
