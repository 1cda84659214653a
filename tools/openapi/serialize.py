"""Parameters onto the wire: every OpenAPI `style`/`explode` for path, query, header and cookie.

Each function here is called once per parameter when a tool is built and returns a small closure
that renders one argument value; calls then do no lookups or branching on the plan. Every value
token is percent-encoded (or, for headers, checked) so that the separators we add are the only
structure in the result: an argument can never add a path segment, a query pair, a header or a
cookie of its own (THREATS S1, S5, A4).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

from tools.openapi.errors import RequestRefused
from tools.openapi.plan import ParamPlan

__all__ = [
    "CONTROL_HEADERS",
    "PathTemplate",
    "cookie_serializer",
    "header_serializer",
    "path_serializer",
    "primitive_text",
    "query_serializer",
]

# Headers an argument may never set: framing, routing and credentials belong to us.
CONTROL_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "authorization",
        "cookie",
        "content-type",
        "accept",
        "accept-encoding",
        "expect",
    }
)

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SLOT = re.compile(r"\{([^{}]+)\}")
# `allowReserved` lets RFC 3986 reserved characters through, except the ones that would end the
# value or start another pair or the fragment.
_RESERVED_SAFE = ":/?@!$'()*,;[]"

Render = Callable[[Any], str]
RenderMany = Callable[[Any], list[str]]


def primitive_text(value: Any) -> str:
    """The text form of one scalar (JSON spelling for booleans and null; JSON for nested values)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _enc(text: str) -> str:
    return quote(text, safe="")


def _tokens(value: Any) -> list[str]:
    """Raw tokens of a value, not exploded: an object is flattened to key, value, key, value…"""
    if isinstance(value, Mapping):
        flat: list[str] = []
        for k, v in value.items():
            flat += [str(k), primitive_text(v)]
        return flat
    if isinstance(value, list | tuple):
        return [primitive_text(v) for v in value]
    return [primitive_text(value)]


def _pairs(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), primitive_text(v)) for k, v in value.items()]


# --- path -------------------------------------------------------------------------------------


def _check_path_token(param: str, token: str) -> str:
    decoded = unquote(token)
    if token in (".", "..") or decoded in (".", ".."):
        raise RequestRefused(f"Path parameter '{param}' must not be '.' or '..'")
    if "/" in decoded or "\\" in decoded:
        raise RequestRefused(f"Path parameter '{param}' must not contain '/' or '\\'")
    if _CONTROL.search(decoded):
        raise RequestRefused(f"Path parameter '{param}' must not contain control characters")
    return _enc(token)


def path_serializer(plan: ParamPlan) -> Render:
    """simple / label / matrix, with and without explode; tokens checked then encoded."""
    name, style, explode = plan.name, plan.style or "simple", plan.explode
    ename = _enc(name)

    def tokens(value: Any) -> list[str]:
        if isinstance(value, Mapping) and explode:
            return [f"{_check_path_token(name, k)}={_check_path_token(name, v)}" for k, v in _pairs(value)]
        return [_check_path_token(name, t) for t in _tokens(value)]

    if style == "label":
        sep = "." if explode else ","
        return lambda value: "." + sep.join(tokens(value))
    if style == "matrix":

        def matrix(value: Any) -> str:
            parts = tokens(value)
            if explode and isinstance(value, Mapping):
                return "".join(";" + t for t in parts)
            if explode and isinstance(value, list | tuple):
                return "".join(f";{ename}={t}" for t in parts)
            return f";{ename}=" + ",".join(parts)

        return matrix
    return lambda value: ",".join(tokens(value))


class PathTemplate:
    """`/pets/{petId}` under a base path, compiled into literal pieces and parameter slots."""

    def __init__(self, base_path: str, template: str, params: Sequence[ParamPlan]) -> None:
        by_name = {p.name: p for p in params}
        self.pieces: list[str | tuple[str, str, Render]] = []
        literal = base_path.rstrip("/")
        position = 0
        for match in _SLOT.finditer(template):
            literal += quote(template[position : match.start()], safe="/:@!$&'()*+,;=-._~%")
            slot = match.group(1)
            plan = by_name.get(slot)
            if plan is None:
                raise ValueError(f"path template {template!r} names {{{slot}}} but the plan has no such parameter")
            self.pieces.append(literal)
            self.pieces.append((plan.arg, slot, path_serializer(plan)))
            literal = ""
            position = match.end()
        literal += quote(template[position:], safe="/:@!$&'()*+,;=-._~%")
        self.pieces.append(literal)
        self.static = len(self.pieces) == 1

    def render(self, arguments: Mapping[str, Any]) -> str:
        """The encoded path for these arguments.

        Raises:
            RequestRefused: a value is missing, empty, or would add or climb a path segment.
        """
        if self.static:
            return self.pieces[0]  # type: ignore[return-value]
        out: list[str] = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            arg, name, render = piece
            if arg not in arguments:
                raise RequestRefused(f"Path parameter '{name}' is required")
            text = render(arguments[arg])
            if not text:
                raise RequestRefused(f"Path parameter '{name}' must not be empty")
            out.append(text)
        path = "".join(out)
        # Belt and braces: a label-style "." or an empty label still must not form a dot segment.
        for segment in path.split("/"):
            if segment in (".", ".."):
                raise RequestRefused("Path parameters must not form '.' or '..' segments")
        return path


# --- query ------------------------------------------------------------------------------------


def query_serializer(plan: ParamPlan) -> RenderMany:
    """form / spaceDelimited / pipeDelimited / deepObject → encoded `k=v` pieces."""
    name, style, explode = plan.name, plan.style or "form", plan.explode
    safe = _RESERVED_SAFE if plan.allow_reserved else ""
    ename = quote(name, safe="")

    def enc(text: str) -> str:
        return quote(text, safe=safe)

    if style == "deepObject":

        def deep(value: Any) -> list[str]:
            if not isinstance(value, Mapping):
                return [f"{ename}={enc(primitive_text(value))}"]
            return [f"{ename}%5B{_enc(k)}%5D={enc(v)}" for k, v in _pairs(value)]

        return deep
    delimiter = {"spaceDelimited": "%20", "pipeDelimited": "%7C"}.get(style, ",")

    def form(value: Any) -> list[str]:
        if isinstance(value, Mapping) and explode:
            return [f"{_enc(k)}={enc(v)}" for k, v in _pairs(value)]
        raw = _tokens(value)
        if isinstance(value, list | tuple) and explode:
            return [f"{ename}={enc(t)}" for t in raw]
        return [f"{ename}=" + delimiter.join(enc(t) for t in raw)]

    return form


# --- header and cookie ------------------------------------------------------------------------


def _check_header_text(param: str, text: str) -> str:
    if _CONTROL.search(text):
        raise RequestRefused(f"Header parameter '{param}' must not contain CR, LF or other control characters")
    return text


def header_serializer(plan: ParamPlan) -> Callable[[Any], bytes]:
    """simple style; values are checked for CR/LF and control characters, never encoded away.

    Raises:
        ValueError: the spec's header name is not an HTTP token (found when the tool is built).
    """
    name, explode = plan.name, plan.explode
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header parameter name {name!r} is not a valid HTTP header name")

    def render(value: Any) -> bytes:
        if explode and isinstance(value, Mapping):
            text = ",".join(f"{k}={v}" for k, v in _pairs(value))
        else:
            text = ",".join(_tokens(value))
        return _check_header_text(name, text).encode("utf-8")

    return render


def cookie_serializer(plan: ParamPlan) -> RenderMany:
    """form style → `name=value` pieces with every value token percent-encoded.

    Raises:
        ValueError: the spec's cookie name is not an HTTP token (found when the tool is built).
    """
    name, explode = plan.name, plan.explode
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"cookie parameter name {name!r} is not a valid cookie name")

    def render(value: Any) -> list[str]:
        if isinstance(value, Mapping) and explode:
            return [f"{_enc(k)}={_enc(v)}" for k, v in _pairs(value)]
        raw = _tokens(value)
        if isinstance(value, list | tuple) and explode:
            return [f"{name}={_enc(t)}" for t in raw]
        return [f"{name}=" + ",".join(_enc(t) for t in raw)]

    return render
