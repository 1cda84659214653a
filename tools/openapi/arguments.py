"""Parameters and request bodies as one flat, collision-safe argument object.

Arguments are named after the parameter (sanitized to `[A-Za-z0-9_.-]`); a name used twice
(`id` in the path and in the query) gets its location appended (`id_query`). An object body's
top-level properties become arguments of their own when none of them collides with a parameter;
otherwise, and for bodies that are not plain objects, the whole body is one `body` argument.
Read-only body properties are not arguments (a server sets them). Multipart binary properties
are base64 strings sent as file parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.openapi.naming import NameAllocator, sanitize
from tools.openapi.operation import MediaType, Operation
from tools.openapi.plan import BodyField, BodyPlan, ParamPlan
from tools.openapi.schema import DEFS_PREFIX, Def, SchemaConverter
from tools.openapi.text import clean_text

__all__ = ["Arguments", "build_arguments", "inline_target", "pick_media"]

_LOCATION_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3}
_UNFLATTENABLE = frozenset({"anyOf", "oneOf", "allOf", "not", "if", "patternProperties", "$ref", "enum", "const"})
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


@dataclass(slots=True)
class Arguments:
    properties: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)
    params: list[ParamPlan] = field(default_factory=list)
    body: BodyPlan | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def pick_media(content: tuple[MediaType, ...]) -> MediaType | None:
    """The media type to send or expect: JSON first, then forms, then the first listed."""

    def rank(media: MediaType) -> int:
        name = media.name.split(";", 1)[0].strip().lower()
        if name == _JSON:
            return 0
        if name.endswith("+json") or name.endswith("/json"):
            return 1
        if name == _FORM:
            return 2
        if name == _MULTIPART:
            return 3
        if name == "*/*":
            return 9
        return 5

    return min(content, key=rank) if content else None


def build_arguments(operation: Operation, converter: SchemaConverter, description_limit: int) -> Arguments:
    """The argument schema properties and the request plan pieces of `operation`."""
    args = Arguments()
    names = NameAllocator()
    for param in sorted(operation.parameters, key=lambda p: _LOCATION_ORDER[p.location]):
        converted = converter.convert(param.schema, param.base)
        args.problems.extend(converted.problems)
        args.notes.extend(converted.notes)
        args.flags.update(converted.flags)
        args.refs.update(converted.refs)
        schema = converted.schema
        text = clean_text(param.description, description_limit)
        args.flags.update(text.flags)
        if text.text and isinstance(schema, dict) and "description" not in schema:
            schema = {**schema, "description": text.text}
        wanted = sanitize(param.name, fallback=param.location)
        arg = names.claim(f"{wanted}_{param.location}" if wanted in names else wanted, original=param.name)
        args.properties[arg] = schema
        if param.required:
            args.required.append(arg)
        args.params.append(
            ParamPlan(
                name=param.name,
                arg=arg,
                location=param.location,
                style=param.style,
                explode=param.explode,
                required=param.required,
                allow_reserved=param.allow_reserved,
                value_type=_value_type(converter.target(schema)),
            )
        )
    _add_body(operation, converter, names, args, description_limit)
    return args


def _value_type(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "properties" in schema:
        return "object"
    return kind if isinstance(kind, str) else None


def _add_body(
    operation: Operation, converter: SchemaConverter, names: NameAllocator, args: Arguments, limit: int
) -> None:
    body = operation.request_body
    if body is None:
        return
    media = pick_media(body.content)
    if media is None:
        args.notes.append("request body without content; none is sent")
        return
    media_name = media.name.split(";", 1)[0].strip().lower()
    description = clean_text(body.description, limit)
    args.flags.update(description.flags)
    structured = media_name == _JSON or media_name.endswith("+json") or media_name in (_FORM, _MULTIPART)
    if media.schema is None or not structured:
        # Text and binary bodies are one string (binary as base64); a schema-less JSON body is any value.
        schema: dict[str, Any] = {}
        if not structured:
            schema["type"] = "string"
            if not (media_name.startswith("text/") or media_name.endswith(("+xml", "/xml"))):
                schema["contentEncoding"] = "base64"
        if description.text:
            schema["description"] = description.text
        arg = names.claim("body")
        args.properties[arg] = schema
        if body.required:
            args.required.append(arg)
        args.body = BodyPlan(media_type=media.name, required=body.required, whole_arg=arg)
        return
    converted = converter.convert(media.schema, media.base)
    args.problems.extend(converted.problems)
    args.notes.extend(converted.notes)
    args.flags.update(converted.flags)
    target, refs, inlined = inline_target(converter, converted.schema, set(converted.refs))
    for definition in inlined:
        # The definition is now the top level: its problems are this tool's own.
        args.problems.extend(definition.problems)
        args.notes.extend(definition.notes)
        args.flags.update(definition.flags)
    encoding = {k: dict(v) for k, v in media.encoding.items()}
    fields = _flatten(target, names, media_name == _MULTIPART) if isinstance(target, dict) else None
    if fields is None:
        args.refs.update(converted.refs)
        schema_any = converted.schema
        if description.text and isinstance(schema_any, dict) and "description" not in schema_any:
            schema_any = {**schema_any, "description": description.text}
        arg = names.claim("body")
        args.properties[arg] = schema_any
        if body.required:
            args.required.append(arg)
        args.body = BodyPlan(media_type=media.name, required=body.required, whole_arg=arg, encoding=encoding)
        return
    args.refs.update(refs)
    required = set(target.get("required", ())) if body.required else set()
    plan_fields = []
    for arg, prop, schema, is_file in fields:
        names.claim(arg)
        args.properties[arg] = schema
        if prop in required:
            args.required.append(arg)
        plan_fields.append(BodyField(arg=arg, property=prop, required=prop in required, is_file=is_file))
    args.body = BodyPlan(media_type=media.name, required=body.required, fields=tuple(plan_fields), encoding=encoding)


def inline_target(converter: SchemaConverter, schema: Any, refs: set[str]) -> tuple[Any, set[str], list[Def]]:
    """Follow a bare top-level reference to its definition, trading it for that one's refs.

    Returns the schema reached, the references it leaves, and the definitions passed through.
    """
    hops = 0
    inlined: list[Def] = []
    while isinstance(schema, dict) and set(schema) <= {"$ref", "description", "title"} and hops < 16:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith(DEFS_PREFIX):
            break
        definition = converter.defs[ref[len(DEFS_PREFIX) :]]
        refs = (refs - {definition.name}) | set(definition.refs)
        schema = definition.schema
        inlined.append(definition)
        hops += 1
    return schema, refs, inlined


def _flatten(target: dict[str, Any], names: NameAllocator, multipart: bool) -> list[tuple[str, str, Any, bool]] | None:
    """(argument, property, schema, is_file) per property, or None when the body stays whole."""
    properties = target.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    if target.get("type", "object") != "object" or target.keys() & _UNFLATTENABLE:
        return None
    extra = target.get("additionalProperties")
    if extra is not None and extra is not False:
        return None
    fields = []
    taken: set[str] = set()
    for prop, schema in properties.items():
        if isinstance(schema, dict) and schema.get("readOnly") is True:
            continue
        arg = sanitize(prop, fallback="field")
        if arg in names or arg in taken or len(arg) > 64:
            return None
        taken.add(arg)
        is_file = multipart and _is_binary(schema)
        if is_file:
            described = schema.get("description") if isinstance(schema, dict) else None
            schema = {"type": "string", "contentEncoding": "base64"}
            schema["description"] = f"{described} (file content, base64)" if described else "file content, base64"
        fields.append((arg, prop, schema, is_file))
    return fields or None


def _is_binary(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("format") == "binary":
        return True
    return "contentMediaType" in schema and "contentEncoding" not in schema
