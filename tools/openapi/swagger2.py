"""Swagger 2.0 operations mapped onto the OpenAPI 3.x shapes of `tools.openapi.operation`.

Only operations are converted, lazily, one at a time; the document itself is never rewritten.
`#/definitions/…` references keep resolving against the original root, so a 2 MB spec is not
copied. The 2.0 forms map as 3.0 does them: a `body` parameter becomes a request body in each
`consumes` media type, `formData` parameters one form or multipart object body, `collectionFormat`
a `style`/`explode` pair, and response schemas the content of each `produces` media type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.openapi.document import OperationEntry
from tools.openapi.operation import (
    MediaType,
    Operation,
    OperationProblem,
    Parameter,
    RequestBody,
    Response,
    security_of,
)
from tools.openapi.refs import RefResolver, UnresolvableRef

__all__ = ["read_operation_v2"]

# Keywords a non-body 2.0 parameter shares with a schema.
_SCHEMA_KEYS = (
    "type",
    "format",
    "items",
    "enum",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "x-nullable",
)
_COLLECTION = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
    "tsv": ("form", False),
}


def _media_list(raw: object, fallback: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(raw, list):
        listed = tuple(m for m in raw if isinstance(m, str))
        if listed:
            return listed
    return fallback


def read_operation_v2(entry: OperationEntry, root: Mapping[str, Any], resolver: RefResolver) -> Operation:
    """The 2.0 operation at `entry` in 3.x shape.

    Raises:
        OperationProblem: it is not an object, or a parameter is unusable.
    """
    raw = entry.raw
    if not isinstance(raw, dict):
        raise OperationProblem("the operation is not an object")
    consumes = _media_list(raw.get("consumes"), _media_list(root.get("consumes"), ("application/json",)))
    produces = _media_list(raw.get("produces"), _media_list(root.get("produces"), ("application/json",)))
    own = raw.get("parameters", [])
    if not isinstance(own, list):
        raise OperationProblem("'parameters' is not a list")
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for index, item in enumerate([*entry.path_parameters, *own]):
        try:
            param, _ = resolver.deref(item, entry.base_uri)
        except UnresolvableRef as exc:
            raise OperationProblem(f"parameter #{index + 1}: {exc}") from None
        if not isinstance(param, dict) or not isinstance(param.get("name"), str) or not param["name"]:
            raise OperationProblem(f"parameter #{index + 1} is not an object with a name")
        merged[(param["name"], str(param.get("in")))] = param
    parameters: list[Parameter] = []
    form: list[dict[str, Any]] = []
    body: RequestBody | None = None
    notes: list[str] = []
    for (name, location), param in merged.items():
        if location == "body":
            body = RequestBody(
                required=param.get("required") is True,
                description=str(param.get("description") or ""),
                content=tuple(MediaType(name=m, schema=param.get("schema"), base=entry.base_uri) for m in consumes),
            )
        elif location == "formData":
            form.append(param)
        elif location in ("path", "query", "header", "cookie"):
            if location == "header" and name.lower() in ("accept", "content-type", "authorization"):
                notes.append(f"header parameter {name!r} is set by the request itself; not an argument")
                continue
            fmt = param.get("collectionFormat", "csv")
            style, explode = _COLLECTION.get(fmt if isinstance(fmt, str) else "csv", ("form", False))
            if fmt == "tsv":
                notes.append(f"parameter {name!r}: collectionFormat tsv is sent comma-separated")
            if location in ("path", "header"):
                style = "simple"
            parameters.append(
                Parameter(
                    name=name,
                    location=location,  # type: ignore[arg-type]
                    required=location == "path" or param.get("required") is True,
                    description=str(param.get("description") or ""),
                    schema={key: param[key] for key in _SCHEMA_KEYS if key in param},
                    base=entry.base_uri,
                    style=style,
                    explode=explode,
                )
            )
        else:
            raise OperationProblem(f"parameter {name!r}: unsupported location 'in: {location}'")
    if form:
        body = _form_body(form, consumes, entry.base_uri)
    responses = []
    raw_responses = raw.get("responses")
    if isinstance(raw_responses, dict):
        for status, response in raw_responses.items():
            if not str(status).startswith("2"):
                continue
            try:
                resolved, base = resolver.deref(response, entry.base_uri)
            except UnresolvableRef:
                continue
            if isinstance(resolved, dict) and "schema" in resolved:
                content = tuple(MediaType(name=m, schema=resolved["schema"], base=base) for m in produces)
                responses.append(Response(status=str(status), content=content))
    operation_id = raw.get("operationId")
    tags = raw.get("tags")
    return Operation(
        method=entry.method,
        path=entry.path,
        operation_id=operation_id if isinstance(operation_id, str) and operation_id else None,
        summary=str(raw.get("summary") or ""),
        description=str(raw.get("description") or ""),
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        deprecated=raw.get("deprecated") is True,
        parameters=tuple(parameters),
        request_body=body,
        responses=tuple(responses),
        security=security_of(raw.get("security")),
        notes=tuple(notes),
    )


def _form_body(form: list[dict[str, Any]], consumes: tuple[str, ...], base: str) -> RequestBody:
    has_file = any(param.get("type") == "file" for param in form)
    multipart = has_file or "multipart/form-data" in consumes
    media = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in form:
        schema = {key: param[key] for key in _SCHEMA_KEYS if key in param}
        if param.get("description"):
            schema["description"] = param["description"]
        properties[param["name"]] = schema
        if param.get("required") is True:
            required.append(param["name"])
    schema_obj: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema_obj["required"] = required
    return RequestBody(
        required=bool(required), description="", content=(MediaType(name=media, schema=schema_obj, base=base),)
    )
