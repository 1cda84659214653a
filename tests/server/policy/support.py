"""Tools with chosen annotations, tags and schemas for the policy tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.model import CallContext, Tool, ToolAnnotations, ToolResult


async def echo(arguments: Mapping[str, Any], _: CallContext) -> ToolResult:
    return ToolResult(content=[], structured={"arguments": dict(arguments)})


def make_tool(
    name: str,
    *,
    access: str = "read",
    source: str = "demo",
    tags: tuple[str, ...] = (),
    properties: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Tool:
    annotations = {
        "read": ToolAnnotations(read_only=True),
        "write": ToolAnnotations(read_only=False, destructive=False),
        "destructive": ToolAnnotations(read_only=False, destructive=True),
        "unannotated": ToolAnnotations(),
    }[access]
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    return Tool(
        name=name,
        description=f"{name} tool",
        input_schema=schema,
        executor=echo,
        source=source,
        annotations=annotations,
        tags=tags,
        meta=dict(meta or {}),
    )
