"""Request bodies: JSON, form-urlencoded, multipart (file parts included), text and binary.

`body_encoder(plan)` runs once per tool and returns a closure from validated arguments to
`(bytes, content type)`. Bodies are always serialized by us, never spliced from strings, so a
value like `x", "role":"admin` round-trips literally (THREATS A4).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from tools.openapi.errors import RequestRefused
from tools.openapi.plan import BodyField, BodyPlan, ParamPlan
from tools.openapi.serialize import primitive_text, query_serializer

__all__ = ["BodyEncoder", "EncodedBody", "body_encoder"]

EncodedBody = tuple[bytes, str]
BodyEncoder = Callable[[Mapping[str, Any]], EncodedBody | None]

_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode_base64(what: str, value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise RequestRefused(f"'{what}' must be base64-encoded content")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestRefused(f"'{what}' is not valid base64") from None


def body_encoder(plan: BodyPlan) -> BodyEncoder:
    """A closure that builds the body from arguments, or returns `None` when there is none to send."""
    gather = _gatherer(plan)
    media = plan.media_type.split(";", 1)[0].strip().lower()
    encode: Callable[[Any], EncodedBody]
    if media == _FORM:
        encode = _form_encoder(plan)
    elif media == _MULTIPART:
        encode = _multipart_encoder(plan)
    elif media == "application/json" or media.endswith("+json"):
        encode = lambda value: (_json_bytes(value), plan.media_type)  # noqa: E731
    elif media.startswith("text/") or media.endswith(("+xml", "/xml")):
        encode = lambda value: (  # noqa: E731
            value.encode("utf-8") if isinstance(value, str) else _json_bytes(value),
            plan.media_type,
        )
    else:
        # Any other media type is binary, carried in its argument as base64.
        encode = lambda value: (_decode_base64("body", value), plan.media_type)  # noqa: E731

    def build(arguments: Mapping[str, Any]) -> EncodedBody | None:
        value = gather(arguments)
        return None if value is None else encode(value)

    return build


def _gatherer(plan: BodyPlan) -> Callable[[Mapping[str, Any]], Any]:
    whole, fields, required = plan.whole_arg, plan.fields, plan.required
    if whole is not None:
        return lambda arguments: arguments.get(whole, {} if required else None)

    def gather(arguments: Mapping[str, Any]) -> Any:
        value = {f.property: arguments[f.arg] for f in fields if f.arg in arguments}
        return value if value or required else None

    return gather


# --- form-urlencoded --------------------------------------------------------------------------


def _form_encoder(plan: BodyPlan) -> Callable[[Any], EncodedBody]:
    renderers: dict[str, Callable[[Any], list[str]]] = {}
    json_props: set[str] = set()

    def renderer(prop: str) -> Callable[[Any], list[str]]:
        found = renderers.get(prop)
        if found is None:
            hints = plan.encoding.get(prop, {})
            if str(hints.get("contentType", "")).startswith("application/json"):
                json_props.add(prop)
            style = str(hints.get("style", "form"))
            explode = bool(hints.get("explode", style == "form"))
            reserved = bool(hints.get("allowReserved", False))
            param = ParamPlan(
                name=prop, arg=prop, location="query", style=style, explode=explode, allow_reserved=reserved
            )
            found = renderers[prop] = query_serializer(param)
        return found

    for known in (f.property for f in plan.fields):
        renderer(known)

    def encode(value: Any) -> EncodedBody:
        if not isinstance(value, Mapping):
            raise RequestRefused("A form body must be an object")
        pieces: list[str] = []
        for prop, item in value.items():
            render = renderer(str(prop))
            pieces += render(_json_bytes(item).decode() if prop in json_props else item)
        return "&".join(pieces).encode("ascii"), _FORM

    return encode


# --- multipart --------------------------------------------------------------------------------


def _disposition_text(text: str) -> str:
    # The WHATWG multipart encoding: quotes and line breaks percent-escaped inside quoted strings.
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _part(name: str, data: bytes, *, filename: str | None = None, content_type: str | None = None) -> bytes:
    head = f'Content-Disposition: form-data; name="{_disposition_text(name)}"'
    if filename is not None:
        head += f'; filename="{_disposition_text(filename)}"'
    if content_type:
        head += f"\r\nContent-Type: {_disposition_text(content_type)}"
    return head.encode("utf-8") + b"\r\n\r\n" + data


def _multipart_encoder(plan: BodyPlan) -> Callable[[Any], EncodedBody]:
    files: dict[str, BodyField] = {f.property: f for f in plan.fields if f.is_file}
    hinted_types = {
        prop: str(hints["contentType"]).split(",", 1)[0].strip()
        for prop, hints in plan.encoding.items()
        if "contentType" in hints
    }

    def parts_of(prop: str, item: Any) -> list[bytes]:
        hint = hinted_types.get(prop)
        if prop in files:
            items = item if isinstance(item, list) else [item]
            return [
                _part(prop, _decode_base64(prop, one), filename=prop, content_type=hint or "application/octet-stream")
                for one in items
            ]
        if isinstance(item, list) and all(not isinstance(one, Mapping | list) for one in item):
            return [_part(prop, primitive_text(one).encode("utf-8"), content_type=hint) for one in item]
        if isinstance(item, Mapping | list):
            return [_part(prop, _json_bytes(item), content_type=hint or "application/json")]
        return [_part(prop, primitive_text(item).encode("utf-8"), content_type=hint)]

    def encode(value: Any) -> EncodedBody:
        if not isinstance(value, Mapping):
            raise RequestRefused("A multipart body must be an object")
        boundary = os.urandom(16).hex()
        delimiter = b"--" + boundary.encode("ascii")
        chunks: list[bytes] = []
        for prop, item in value.items():
            for part in parts_of(str(prop), item):
                chunks += [delimiter, b"\r\n", part, b"\r\n"]
        chunks += [delimiter, b"--\r\n"]
        return b"".join(chunks), f"{_MULTIPART}; boundary={boundary}"

    return encode
