"""The library a toolkiln module is written against.

A module declares its tools with `@tool` and reaches its API only through `http`, which asks the
server's broker to make the request (allowlisted origins only; credentials are added by the server
and never visible here)::

    from toolkiln_module import http, tool

    @tool(description="Current weather for a city",
          input_schema={"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": False})
    def weather(city: str) -> dict:
        return http.get("https://api.weather.example:443/v1/now", params={"q": city}).json()

A tool returns a string (text) or JSON-compatible data (structured content). Tools are plain
functions: no sockets, threads that fork, or subprocesses are available in the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import http

__all__ = ["ToolDef", "http", "registered", "tool"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ToolDef:
    name: str
    function: Callable[..., Any]
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "annotations": self.annotations,
        }


_registry: dict[str, ToolDef] = {}


def tool(
    name: str | None = None,
    *,
    description: str | None = None,
    input_schema: Mapping[str, Any] | None = None,
    output_schema: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Declare a function as one of the module's tools (called with the arguments as keywords)."""

    def register(function: F) -> F:
        tool_name = name or function.__name__
        if tool_name in _registry:
            raise ValueError(f"tool {tool_name!r} is declared twice")
        _registry[tool_name] = ToolDef(
            name=tool_name,
            function=function,
            description=description if description is not None else (function.__doc__ or "").strip(),
            input_schema=dict(input_schema or {"type": "object"}),
            output_schema=dict(output_schema) if output_schema is not None else None,
            annotations=dict(annotations or {}),
        )
        return function

    return register


def registered() -> dict[str, ToolDef]:
    return dict(_registry)
