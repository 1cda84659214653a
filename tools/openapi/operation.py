"""The typed view of one operation (OpenAPI 3.x shape; Swagger 2.0 is mapped onto it).

Parameters, bodies and responses are dereferenced and checked here; schemas stay raw, each with
the URI of the document it came from, for `tools.openapi.schema` to convert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.openapi.document import OperationEntry
from tools.openapi.plan import ParamLocation
from tools.openapi.refs import RefResolver, UnresolvableRef

__all__ = [
    "MediaType",
    "Operation",
    "OperationProblem",
    "Parameter",
    "RequestBody",
    "Response",
    "merge_parameters",
    "read_operation_v3",
    "security_of",
]

_LOCATIONS: tuple[ParamLocation, ...] = ("path", "query", "header", "cookie")
# OpenAPI: header parameters with these names "SHALL be ignored" (set by the request itself).
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


class OperationProblem(Exception):
    """The operation cannot become a tool; the message is the report's reason."""


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: ParamLocation
    required: bool
    description: str
    schema: Any
    base: str  # the document the schema lives in
    style: str
    explode: bool
    allow_reserved: bool = False
    media_type: str | None = None  # set when the parameter uses `content` instead of `schema`


@dataclass(frozen=True, slots=True)
class MediaType:
    name: str
    schema: Any
    base: str
    encoding: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestBody:
    required: bool
    description: str
    content: tuple[MediaType, ...]


@dataclass(frozen=True, slots=True)
class Response:
    status: str
    content: tuple[MediaType, ...]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    operation_id: str | None
    summary: str
    description: str
    tags: tuple[str, ...]
    deprecated: bool
    parameters: tuple[Parameter, ...]
    request_body: RequestBody | None
    responses: tuple[Response, ...]
    security: tuple[Mapping[str, tuple[str, ...]], ...] | None
    notes: tuple[str, ...] = ()


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def security_of(raw: object) -> tuple[Mapping[str, tuple[str, ...]], ...] | None:
    """OpenAPI `security` as plain tuples; `None` when absent or malformed (inherit)."""
    if not isinstance(raw, list):
        return None
    alternatives = []
    for requirement in raw:
        if not isinstance(requirement, dict):
            return None
        alternatives.append(
            {
                str(name): tuple(str(s) for s in scopes) if isinstance(scopes, list) else ()
                for name, scopes in requirement.items()
            }
        )
    return tuple(alternatives)


def _tags(raw: Mapping[str, Any]) -> tuple[str, ...]:
    tags = raw.get("tags")
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def _parameter(raw: Any, base: str, resolver: RefResolver, index: int) -> Parameter | str:
    """The parameter, or the name of an ignored header parameter."""
    try:
        param, base = resolver.deref(raw, base)
    except UnresolvableRef as exc:
        raise OperationProblem(f"parameter #{index + 1}: {exc}") from None
    if not isinstance(param, dict):
        raise OperationProblem(f"parameter #{index + 1} is not an object")
    name, location = param.get("name"), param.get("in")
    if not isinstance(name, str) or not name:
        raise OperationProblem(f"parameter #{index + 1} has no name")
    if location not in _LOCATIONS:
        raise OperationProblem(f"parameter {name!r}: unsupported location 'in: {location}'")
    if location == "header" and name.lower() in _IGNORED_HEADERS:
        return name
    schema = param.get("schema")
    media_type = None
    content = param.get("content")
    if schema is None and isinstance(content, dict) and content:
        media_type, media = next(iter(content.items()))
        schema = media.get("schema") if isinstance(media, dict) else None
    default_style = "form" if location in ("query", "cookie") else "simple"
    raw_style = param.get("style")
    style = raw_style if isinstance(raw_style, str) else default_style
    explode = param.get("explode")
    return Parameter(
        name=name,
        location=location,
        required=location == "path" or param.get("required") is True,
        description=_text(param.get("description")),
        schema=schema if schema is not None else {},
        base=base,
        style=style,
        explode=explode if isinstance(explode, bool) else style == "form",
        allow_reserved=param.get("allowReserved") is True,
        media_type=media_type,
    )


def merge_parameters(
    shared: Iterable[Any], own: Iterable[Any], base: str, resolver: RefResolver, notes: list[str] | None = None
) -> tuple[Parameter, ...]:
    """Path-item parameters overridden by the operation's own, keyed by (name, location).

    Header parameters the request sets itself are left out, with a line in `notes`.
    """
    merged: dict[tuple[str, str], Parameter] = {}
    for index, raw in enumerate([*shared, *own]):
        param = _parameter(raw, base, resolver, index)
        if isinstance(param, str):
            if notes is not None:
                notes.append(f"header parameter {param!r} is set by the request itself; not an argument")
        else:
            merged[(param.name, param.location)] = param
    return tuple(merged.values())


def _media_types(content: object, base: str) -> tuple[MediaType, ...]:
    if not isinstance(content, dict):
        return ()
    found = []
    for name, media in content.items():
        if not isinstance(media, dict):
            continue
        encoding = media.get("encoding")
        hints = {k: v for k, v in encoding.items() if isinstance(v, dict)} if isinstance(encoding, dict) else {}
        found.append(
            MediaType(
                name=str(name),
                schema=media.get("schema"),
                base=base,
                encoding=hints,
            )
        )
    return tuple(found)


def read_operation_v3(entry: OperationEntry, resolver: RefResolver) -> Operation:
    """The operation at `entry`, dereferenced.

    Raises:
        OperationProblem: it is not an object, or a parameter, body or response is unusable.
    """
    raw = entry.raw
    if not isinstance(raw, dict):
        raise OperationProblem("the operation is not an object")
    own = raw.get("parameters", [])
    if not isinstance(own, list):
        raise OperationProblem("'parameters' is not a list")
    notes: list[str] = []
    parameters = merge_parameters(entry.path_parameters, own, entry.base_uri, resolver, notes)
    body = None
    if "requestBody" in raw:
        try:
            body_raw, body_base = resolver.deref(raw["requestBody"], entry.base_uri)
        except UnresolvableRef as exc:
            raise OperationProblem(f"requestBody: {exc}") from None
        if not isinstance(body_raw, dict):
            raise OperationProblem("requestBody is not an object")
        body = RequestBody(
            required=body_raw.get("required") is True,
            description=_text(body_raw.get("description")),
            content=_media_types(body_raw.get("content"), body_base),
        )
    responses = []
    raw_responses = raw.get("responses")
    if isinstance(raw_responses, dict):
        for status, response in raw_responses.items():
            if not str(status).startswith("2"):
                continue
            try:
                resolved, base = resolver.deref(response, entry.base_uri)
            except UnresolvableRef:
                continue  # an unusable response only costs the outputSchema
            if isinstance(resolved, dict):
                responses.append(Response(status=str(status), content=_media_types(resolved.get("content"), base)))
    operation_id = raw.get("operationId")
    return Operation(
        method=entry.method,
        path=entry.path,
        operation_id=operation_id if isinstance(operation_id, str) and operation_id else None,
        summary=_text(raw.get("summary")),
        description=_text(raw.get("description")),
        tags=_tags(raw),
        deprecated=raw.get("deprecated") is True,
        parameters=parameters,
        request_body=body,
        responses=tuple(responses),
        security=security_of(raw.get("security")),
        notes=tuple(notes),
    )
