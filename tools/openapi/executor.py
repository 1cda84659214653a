"""The OpenAPI tool executor: validated arguments → exactly one request under the source's base.

`make_executor` is called once per operation when a source is built; it compiles the plan
(path template, per-parameter serializers, body encoder, fixed headers) so that a call only
renders values and sends. The URL is assembled from the base origin, the base path and the
encoded template, never joined from argument text, so no argument can change the host or climb
out of the base path (THREATS S1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tools.model import CallContext, ToolExecutor, ToolResult
from tools.openapi.errors import RequestRefused
from tools.openapi.plan import OperationPlan
from tools.openapi.serialize import (
    CONTROL_HEADERS,
    PathTemplate,
    cookie_serializer,
    header_serializer,
    query_serializer,
)
from tools.openapi.serialize_body import body_encoder
from tools.openapi.upstream import Upstream, default_headers

__all__ = ["OperationExecutor", "make_executor"]


def make_executor(plan: OperationPlan, upstream: Upstream) -> ToolExecutor:
    """The executor for one operation of `upstream`'s source.

    Raises:
        ValueError: the plan is inconsistent (a path slot without a parameter, a header or cookie
            name that is not an HTTP token); a converter bug, found when the tool is built.
    """
    return OperationExecutor(plan, upstream)


class OperationExecutor:
    """Renders one operation's request from arguments and hands it to the upstream."""

    __slots__ = (
        "_body",
        "_cookies",
        "_forbidden",
        "_headers",
        "_method",
        "_origin",
        "_path",
        "_query",
        "_static_headers",
        "plan",
        "upstream",
    )

    def __init__(self, plan: OperationPlan, upstream: Upstream) -> None:
        self.plan = plan
        self.upstream = upstream
        self._method = plan.method.upper()
        self._origin = upstream.origin
        by_location: dict[str, list[Any]] = {"path": [], "query": [], "header": [], "cookie": []}
        for param in plan.params:
            by_location[param.location].append(param)
        self._path = PathTemplate(upstream.base_path, plan.path, by_location["path"])
        self._query = tuple((p.arg, query_serializer(p)) for p in by_location["query"])
        # A spec may declare `Authorization` or `Host` as a header parameter; such arguments are
        # refused when given and never sent (THREATS S5, A4).
        self._forbidden = tuple((p.arg, p.name) for p in by_location["header"] if p.name.lower() in CONTROL_HEADERS)
        self._headers = tuple(
            (p.arg, p.name.lower().encode("ascii"), header_serializer(p))
            for p in by_location["header"]
            if p.name.lower() not in CONTROL_HEADERS
        )
        self._cookies = tuple((p.arg, cookie_serializer(p)) for p in by_location["cookie"])
        self._body = body_encoder(plan.body) if plan.body is not None else None
        self._static_headers = default_headers(plan.accept)

    def build(self, arguments: Mapping[str, Any]) -> httpx.Request:
        """The `httpx.Request` for these arguments.

        Raises:
            RequestRefused: an argument would make an unsafe request.
        """
        url = self._origin + self._path.render(arguments)
        pieces: list[str] = []
        for arg, render_query in self._query:
            if arg in arguments:
                pieces += render_query(arguments[arg])
        if pieces:
            url += "?" + "&".join(pieces)
        for arg, name in self._forbidden:
            if arg in arguments:
                raise RequestRefused(f"Header '{name}' cannot be set by an argument")
        headers = list(self._static_headers)
        for arg, header, render_header in self._headers:
            if arg in arguments:
                headers.append((header, render_header(arguments[arg])))
        if self._cookies:
            crumbs: list[str] = []
            for arg, render_cookie in self._cookies:
                if arg in arguments:
                    crumbs += render_cookie(arguments[arg])
            if crumbs:
                headers.append((b"cookie", "; ".join(crumbs).encode("ascii")))
        content: bytes | None = None
        if self._body is not None:
            encoded = self._body(arguments)
            if encoded is not None:
                content, content_type = encoded
                headers.append((b"content-type", content_type.encode("latin-1")))
        try:
            return self.upstream.request(self._method, url, headers, content)
        except httpx.InvalidURL as exc:  # e.g. past httpx's URL length limit
            raise RequestRefused(f"The request URL would be invalid: {exc}") from None

    async def __call__(self, arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        return await self.upstream.exchange(self.build(arguments))
