"""Operations → tools: schemas, arguments, plans, annotations, output schemas, filters, budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tools.model import ToolAnnotations
from tools.openapi.build import build_spec
from tools.openapi.convert import ToolDraft
from tools.openapi.plan import BodyField, ParamPlan
from tools.openapi.settings import OpenApiSourceSettings

OK = {"200": {"description": "ok"}}


def _doc(paths: dict[str, Any], version: str = "3.0.3", **top: Any) -> dict[str, Any]:
    key = "swagger" if version == "2.0" else "openapi"
    return {key: version, "info": {"title": "t", "version": "1"}, "paths": paths, **top}


def _build(tmp_path: Path, doc: dict[str, Any], **settings: Any) -> Any:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    settings.setdefault("base_url", "https://api.example.com")
    return build_spec(OpenApiSourceSettings(spec=str(path), **settings))


def _tool(
    tmp_path: Path, operation: dict[str, Any], *, method: str = "post", path: str = "/x", **top: Any
) -> ToolDraft:
    built = _build(tmp_path, _doc({path: {method: {"operationId": "op", "responses": OK, **operation}}}, **top))
    (draft,) = built.conversion.drafts
    return draft


def _body(schema: Any, media: str = "application/json", required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {media: {"schema": schema}}}}


# Schemas ----------------------------------------------------------------------------------------

SCHEMAS = [
    pytest.param({"type": "string", "nullable": True}, {"type": ["string", "null"]}, id="nullable-type"),
    pytest.param(
        {"type": "string", "enum": ["a"], "nullable": True},
        {"type": ["string", "null"], "enum": ["a", None]},
        id="nullable-enum",
    ),
    pytest.param(
        {"allOf": [{"$ref": "#/components/schemas/Pet"}], "nullable": True, "description": "d"},
        {"description": "d", "anyOf": [{"$ref": "#/$defs/Pet"}, {"type": "null"}]},
        id="nullable-reference",
    ),
    pytest.param(
        {"type": "number", "minimum": 1, "exclusiveMinimum": True, "maximum": 9, "exclusiveMaximum": False},
        {"type": "number", "exclusiveMinimum": 1, "maximum": 9},
        id="exclusive-bounds-3.0",
    ),
    pytest.param(
        {"oneOf": [{"type": "string"}, {"type": "integer"}], "discriminator": {"propertyName": "kind"}},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        id="oneOf-becomes-anyOf",
    ),
    pytest.param(
        {"type": "string", "pattern": "^\\p{L}+$", "example": "x", "xml": {"name": "a"}, "x-internal": True},
        {"type": "string"},
        id="unusable-pattern-and-extensions-dropped",
    ),
    pytest.param(
        {"type": "array", "items": [{"type": "string"}]},
        {"type": "array", "prefixItems": [{"type": "string"}]},
        id="tuple-items",
    ),
    pytest.param({"type": "file"}, {"type": "string", "format": "binary"}, id="swagger-file"),
    pytest.param({"type": "integer", "minLength": -1, "maxLength": "3"}, {"type": "integer"}, id="bad-bounds-dropped"),
]


@pytest.mark.parametrize(("schema", "expected"), SCHEMAS)
def test_openapi_schemas_become_json_schema_2020_12(tmp_path: Path, schema: Any, expected: Any) -> None:
    components = {"schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    draft = _tool(
        tmp_path,
        {"parameters": [{"name": "v", "in": "query", "schema": schema}]},
        method="get",
        components=components,
    )
    assert draft.input_schema["properties"]["v"] == expected
    Draft202012Validator.check_schema(draft.input_schema)


def test_allof_inheritance_is_merged_into_one_object(tmp_path: Path) -> None:
    components = {
        "schemas": {
            "Base": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
            "Dog": {
                "allOf": [
                    {"$ref": "#/components/schemas/Base"},
                    {"type": "object", "required": ["bark"], "properties": {"bark": {"type": "boolean"}}},
                ]
            },
        }
    }
    draft = _tool(tmp_path, _body({"$ref": "#/components/schemas/Dog"}), components=components)
    assert set(draft.input_schema["properties"]) == {"id", "bark"}
    assert draft.input_schema["required"] == ["id", "bark"]
    assert "$defs" not in draft.input_schema


# Arguments and plans ------------------------------------------------------------------------------


def test_parameters_in_every_location_become_one_flat_collision_safe_object(tmp_path: Path) -> None:
    params = [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "id", "in": "query", "schema": {"type": "string"}},
        {"name": "filter", "in": "query", "style": "deepObject", "explode": True, "schema": {"type": "object"}},
        {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
        {"name": "X-Request-Id", "in": "header", "schema": {"type": "string"}},
        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
        {"name": "Authorization", "in": "header", "schema": {"type": "string"}},
    ]
    draft = _tool(tmp_path, {"parameters": params}, method="get", path="/things/{id}")
    assert list(draft.input_schema["properties"]) == ["id", "id_query", "filter", "tags", "X-Request-Id", "session"]
    assert draft.input_schema["required"] == ["id"]
    assert draft.input_schema["additionalProperties"] is False
    plans = {p.arg: p for p in draft.plan.params}
    assert plans["id"] == ParamPlan("id", "id", "path", "simple", False, required=True, value_type="integer")
    assert plans["id_query"].name == "id"
    assert plans["filter"].style == "deepObject"
    assert plans["tags"] == ParamPlan("tags", "tags", "query", "form", True, value_type="array")
    assert plans["X-Request-Id"].location == "header"
    assert plans["session"].location == "cookie"


def test_an_object_body_is_flattened_and_read_only_fields_are_not_arguments(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["name", "id"],
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "name": {"type": "string"},
            "age": {"type": "integer"},
        },
    }
    draft = _tool(tmp_path, _body(schema))
    assert list(draft.input_schema["properties"]) == ["name", "age"]
    assert draft.input_schema["required"] == ["name"]
    assert draft.plan.body is not None
    assert draft.plan.body.fields == (BodyField("name", "name", required=True), BodyField("age", "age"))
    assert draft.plan.body.whole_arg is None


def test_a_body_property_colliding_with_a_parameter_keeps_the_body_whole(tmp_path: Path) -> None:
    operation = {
        "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
        **_body({"type": "object", "properties": {"name": {"type": "string"}}}),
    }
    draft = _tool(tmp_path, operation)
    assert list(draft.input_schema["properties"]) == ["name", "body"]
    assert draft.plan.body is not None
    assert draft.plan.body.whole_arg == "body"


@pytest.mark.parametrize(
    ("schema", "media"),
    [
        pytest.param({"type": "array", "items": {"type": "string"}}, "application/json", id="array-body"),
        pytest.param({"type": "object", "additionalProperties": {"type": "string"}}, "application/json", id="map-body"),
        pytest.param({"oneOf": [{"type": "object"}, {"type": "string"}]}, "application/json", id="union-body"),
    ],
)
def test_bodies_that_are_not_plain_objects_are_one_argument(tmp_path: Path, schema: Any, media: str) -> None:
    draft = _tool(tmp_path, _body(schema, media))
    assert list(draft.input_schema["properties"]) == ["body"]
    assert draft.input_schema["required"] == ["body"]


def test_multipart_binary_fields_are_base64_file_parts(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}, "note": {"type": "string"}},
    }
    draft = _tool(tmp_path, _body(schema, "multipart/form-data"))
    assert draft.input_schema["properties"]["file"]["contentEncoding"] == "base64"
    assert draft.plan.body is not None
    assert draft.plan.body.media_type == "multipart/form-data"
    assert [f.is_file for f in draft.plan.body.fields] == [True, False]


def test_binary_and_text_bodies_are_one_string(tmp_path: Path) -> None:
    binary = _tool(tmp_path, _body({"type": "string", "format": "binary"}, "application/octet-stream"))
    assert binary.input_schema["properties"]["body"] == {"type": "string", "contentEncoding": "base64"}
    text = _tool(tmp_path, _body({"type": "string"}, "text/plain"))
    assert text.input_schema["properties"]["body"] == {"type": "string"}


def test_swagger_2_body_form_and_collection_formats_map_like_openapi_3(tmp_path: Path) -> None:
    doc = _doc(
        {
            "/pets": {
                "post": {
                    "operationId": "addPet",
                    "consumes": ["application/x-www-form-urlencoded"],
                    "parameters": [
                        {"name": "name", "in": "formData", "type": "string", "required": True},
                        {
                            "name": "tags",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "string"},
                            "collectionFormat": "pipes",
                        },
                    ],
                    "responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}},
                }
            }
        },
        version="2.0",
        definitions={"Pet": {"type": "object", "properties": {"name": {"type": "string", "x-nullable": True}}}},
        host="api.example.com",
        basePath="/v1",
        schemes=["https"],
    )
    built = _build(tmp_path, doc, base_url=None)
    (draft,) = built.conversion.drafts
    assert built.base_url == "https://api.example.com/v1"
    assert draft.plan.body is not None
    assert draft.plan.body.media_type == "application/x-www-form-urlencoded"
    assert draft.input_schema["required"] == ["name"]
    (tags,) = [p for p in draft.plan.params if p.arg == "tags"]
    assert (tags.style, tags.explode) == ("pipeDelimited", False)
    assert draft.output_schema == {"type": "object", "properties": {"name": {"type": ["string", "null"]}}}


def test_undeclared_path_template_variables_become_required_string_arguments(tmp_path: Path) -> None:
    built = _build(tmp_path, _doc({"/users/{user}": {"get": {"operationId": "get", "responses": OK}}}))
    (draft,) = built.conversion.drafts
    assert draft.input_schema["properties"] == {"user": {"type": "string"}}
    assert draft.input_schema["required"] == ["user"]
    assert "not declared" in built.conversion.report.operations[0].notes[0]


# Annotations, output, text -------------------------------------------------------------------------

ANNOTATIONS = [
    pytest.param("get", ToolAnnotations(title="S", read_only=True, idempotent=True, open_world=True), id="get"),
    pytest.param("head", ToolAnnotations(title="S", read_only=True, idempotent=True, open_world=True), id="head"),
    pytest.param(
        "delete",
        ToolAnnotations(title="S", read_only=False, destructive=True, idempotent=True, open_world=True),
        id="delete",
    ),
    pytest.param("put", ToolAnnotations(title="S", read_only=False, idempotent=True, open_world=True), id="put"),
    pytest.param(
        "post",
        ToolAnnotations(title="S", read_only=False, destructive=False, idempotent=False, open_world=True),
        id="post",
    ),
    pytest.param("patch", ToolAnnotations(title="S", read_only=False, idempotent=False, open_world=True), id="patch"),
]


@pytest.mark.parametrize(("method", "expected"), ANNOTATIONS)
def test_annotations_follow_the_http_method(tmp_path: Path, method: str, expected: ToolAnnotations) -> None:
    assert _tool(tmp_path, {"summary": "S"}, method=method).annotations == expected


def test_the_output_schema_is_the_2xx_json_object_response(tmp_path: Path) -> None:
    responses = {
        "201": {
            "description": "c",
            "content": {"application/json": {"schema": {"type": "object", "properties": {"a": {}}}}},
        },
        "200": {"description": "o", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
        "400": {"description": "e", "content": {"application/json": {"schema": {"type": "object"}}}},
    }
    components = {"schemas": {"Pet": {"properties": {"name": {"type": "string"}}}}}
    draft = _tool(tmp_path, {"responses": responses}, method="get", components=components)
    assert draft.output_schema == {"properties": {"name": {"type": "string"}}, "type": "object"}
    assert draft.plan.accept == "application/json"


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param({"type": "array", "items": {"type": "object"}}, id="array"),
        pytest.param({"type": "string"}, id="string"),
        pytest.param({"anyOf": [{"type": "object"}, {"type": "string"}]}, id="union"),
        pytest.param({"type": ["object", "null"]}, id="nullable-object"),
    ],
)
def test_no_output_schema_when_the_result_is_not_an_object(tmp_path: Path, schema: Any) -> None:
    responses = {"200": {"description": "o", "content": {"application/json": {"schema": schema}}}}
    assert _tool(tmp_path, {"responses": responses}, method="get").output_schema is None


def test_description_joins_summary_and_description(tmp_path: Path) -> None:
    draft = _tool(tmp_path, {"summary": "List pets", "description": "All of them.", "deprecated": True}, method="get")
    assert draft.description == "(Deprecated) List pets\n\nAll of them."
    assert draft.title == "List pets"


# Filters, prefix, budget ---------------------------------------------------------------------------


def _five(tmp_path: Path, **settings: Any) -> list[tuple[str, str | None, str | None]]:
    paths = {
        "/pets": {
            "get": {"operationId": "listPets", "tags": ["pets"], "responses": OK},
            "post": {"operationId": "addPet", "tags": ["pets"], "responses": OK},
        },
        "/pets/{id}": {"delete": {"operationId": "deletePet", "tags": ["pets", "admin"], "responses": OK}},
        "/store/orders": {"get": {"operationId": "listOrders", "tags": ["store"], "responses": OK}},
        "/admin/reset": {"post": {"operationId": "reset", "responses": OK}},
    }
    built = _build(tmp_path, _doc(paths), **settings)
    return [(e.operation, e.tool, e.reason) for e in built.conversion.report.operations]


@pytest.mark.parametrize(
    ("settings", "served"),
    [
        pytest.param({"include": {"tags": ["pets"]}}, ["listPets", "addPet", "deletePet"], id="include-tag"),
        pytest.param(
            {"include": {"paths": ["/pets*"], "methods": ["get"]}}, ["listPets"], id="include-path-and-method"
        ),
        pytest.param({"exclude": {"methods": ["DELETE", "POST"]}}, ["listPets", "listOrders"], id="exclude-methods"),
        pytest.param(
            {"exclude": {"operation_ids": ["reset"], "tags": []}},
            ["listPets", "addPet", "deletePet", "listOrders"],
            id="exclude-id",
        ),
        pytest.param(
            {"include": {"tags": ["pets"]}, "exclude": {"tags": ["admin"]}}, ["listPets", "addPet"], id="both"
        ),
        pytest.param(
            {"prefix": "petstore_", "include": {"operation_ids": ["listPets"]}}, ["petstore_listPets"], id="prefix"
        ),
    ],
)
def test_include_exclude_and_prefix(tmp_path: Path, settings: dict[str, Any], served: list[str]) -> None:
    """Every operation is reported; the filtered-out ones with the filter as their reason."""
    report = _five(tmp_path, **settings)
    assert [tool for _, tool, _ in report if tool] == served
    assert len(report) == 5
    assert all(reason and "filter" in reason for _, tool, reason in report if tool is None)


def _wide_union_spec() -> dict[str, Any]:
    variants = [
        {
            "type": "object",
            "properties": {f"field_{i}_{j}": {"type": "string", "description": "x" * 50} for j in range(10)},
        }
        for i in range(30)
    ]
    body = {"type": "object", "properties": {"payload": {"anyOf": variants}, "note": {"type": "string"}}}
    response = {"200": {"description": "o", "content": {"application/json": {"schema": body}}}}
    return _doc({"/x": {"post": {"operationId": "op", "responses": response, **_body(body)}}})


def test_past_the_budget_the_output_schema_goes_first(tmp_path: Path) -> None:
    built = _build(tmp_path, _wide_union_spec(), max_tool_schema_bytes=45_000)
    (draft,) = built.conversion.drafts
    (entry,) = built.conversion.report.operations
    assert draft.output_schema is None
    assert "anyOf" in draft.input_schema["properties"]["payload"]
    assert entry.reason is not None
    assert "outputSchema dropped" in entry.reason


def test_then_deep_unions_collapse_into_a_described_object(tmp_path: Path) -> None:
    built = _build(tmp_path, _wide_union_spec(), max_tool_schema_bytes=2_000)
    (draft,) = built.conversion.drafts
    (entry,) = built.conversion.report.operations
    payload = draft.input_schema["properties"]["payload"]
    assert payload["type"] == "object"
    assert "One of 30 shapes" in payload["description"]
    assert entry.reason is not None
    assert "unions collapsed" in entry.reason
    assert entry.schema_bytes is not None
    assert entry.schema_bytes <= 2_000


def test_and_a_tool_still_too_large_is_skipped_with_its_size(tmp_path: Path) -> None:
    flat = {
        "type": "object",
        "properties": {f"field_{i}": {"type": "string", "description": "x" * 50} for i in range(50)},
    }
    doc = _doc({"/x": {"post": {"operationId": "op", "responses": OK, **_body(flat)}}})
    built = _build(tmp_path, doc, max_tool_schema_bytes=1024)
    (entry,) = built.conversion.report.operations
    assert entry.status == "skipped"
    assert "exceeds the 1,024 B budget" in (entry.reason or "")


# THREATS O7: base URL and server variables ---------------------------------------------------------


def test_server_variables_take_their_defaults_and_never_become_arguments(tmp_path: Path) -> None:
    """THREATS O7: `{tenant}` in servers is filled from its default, not from a tool argument."""
    servers = [
        {
            "url": "https://{tenant}.example.com/{version}",
            "variables": {"tenant": {"default": "acme"}, "version": {"default": "v2"}},
        }
    ]
    built = _build(
        tmp_path, _doc({"/a": {"get": {"operationId": "a", "responses": OK}}}, servers=servers), base_url=None
    )
    assert built.base_url == "https://acme.example.com/v2"
    (draft,) = built.conversion.drafts
    assert draft.input_schema["properties"] == {}


@pytest.mark.parametrize(
    ("servers", "reason"),
    [
        pytest.param([{"url": "/api/v1"}], "is relative", id="relative"),
        pytest.param(
            [{"url": "https://{region}.example.com"}], "variables without defaults", id="templated-no-default"
        ),
        pytest.param([], "no servers", id="none"),
    ],
)
def test_a_spec_without_a_usable_server_needs_base_url_from_config(tmp_path: Path, servers: Any, reason: str) -> None:
    doc = _doc({"/a": {"get": {"operationId": "a", "responses": OK}}}, servers=servers)
    built = _build(tmp_path, doc, base_url=None)
    assert built.base_url is None
    assert reason in built.conversion.report.base_url_from
    configured = _build(tmp_path, doc, base_url="https://internal.example.net/api")
    assert configured.base_url == "https://internal.example.net/api"
    assert configured.conversion.report.base_url_from == "config"


def test_the_configured_base_url_overrides_the_spec(tmp_path: Path) -> None:
    """THREATS O7: the admin's base URL wins over whatever the spec's `servers` says."""
    doc = _doc({"/a": {"get": {"operationId": "a", "responses": OK}}}, servers=[{"url": "http://evil.example.com"}])
    assert _build(tmp_path, doc, base_url="https://api.example.com").base_url == "https://api.example.com"


def test_operations_inherit_the_document_security_unless_they_set_their_own(tmp_path: Path) -> None:
    paths = {
        "/a": {"get": {"operationId": "inherits", "responses": OK}},
        "/b": {"get": {"operationId": "public", "security": [], "responses": OK}},
        "/c": {"get": {"operationId": "scoped", "security": [{"oauth": ["read"]}, {"key": []}], "responses": OK}},
    }
    built = _build(tmp_path, _doc(paths, security=[{"key": []}]))
    plans = {d.name: d.plan.security for d in built.conversion.drafts}
    assert plans == {"inherits": ({"key": ()},), "public": (), "scoped": ({"oauth": ("read",)}, {"key": ()})}


def test_headers_the_request_sets_itself_are_not_arguments_and_the_report_says_so(tmp_path: Path) -> None:
    params = [{"name": "Authorization", "in": "header", "schema": {"type": "string"}}]
    built = _build(tmp_path, _doc({"/a": {"get": {"operationId": "a", "parameters": params, "responses": OK}}}))
    (draft,) = built.conversion.drafts
    assert draft.input_schema["properties"] == {}
    assert any("'Authorization' is set by the request itself" in n for n in built.conversion.report.operations[0].notes)
