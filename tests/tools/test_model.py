"""The tool model: names every host accepts, object-typed input schemas, immutable values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import mcp_types as types
import pytest

from tools.model import CallContext, Principal, Tool, ToolAnnotations, ToolResult, is_valid_tool_name


async def _noop(_arguments: Mapping[str, Any], _context: CallContext) -> ToolResult:
    return ToolResult.text("ok")


def _tool(name: str = "echo", schema: dict[str, Any] | None = None) -> Tool:
    return Tool(
        name=name,
        description="d",
        input_schema=schema if schema is not None else {"type": "object"},
        executor=_noop,
        source="test",
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("echo", id="plain"),
        pytest.param("github.list_issues", id="dotted"),
        pytest.param("a-b_c.D9", id="every-allowed-class"),
        pytest.param("x" * 64, id="exactly-64"),
        pytest.param("1", id="single-digit"),
    ],
)
def test_names_of_allowed_characters_up_to_64_long_are_valid(name: str) -> None:
    assert is_valid_tool_name(name)
    assert _tool(name).name == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 65, id="65-characters"),
        pytest.param("echo ", id="trailing-space"),
        pytest.param(" echo", id="leading-space"),
        pytest.param("ec ho", id="inner-space"),
        pytest.param("echo\u200b", id="zero-width-space"),
        pytest.param("ech\u043e", id="cyrillic-o-confusable"),
        pytest.param("echo\n", id="trailing-newline"),
        pytest.param("echo/../admin", id="slash"),
        pytest.param("echo\x00", id="nul"),
        pytest.param("\u202eohce", id="right-to-left-override"),
        pytest.param("échо", id="accented"),
    ],
)
def test_names_outside_the_portable_pattern_are_refused_at_construction(name: str) -> None:
    assert not is_valid_tool_name(name)
    with pytest.raises(ValueError, match="does not match"):
        _tool(name)


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param({}, id="no-type"),
        pytest.param({"type": "array"}, id="array"),
        pytest.param({"type": ["object", "null"]}, id="type-list"),
        pytest.param({"type": "string"}, id="string"),
    ],
)
def test_an_input_schema_that_is_not_an_object_schema_is_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="inputSchema must be a JSON Schema of type 'object'"):
        _tool(schema=schema)


def test_tools_principals_and_results_are_immutable() -> None:
    tool = _tool()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tool.name = "other"  # type: ignore[misc]
    principal = Principal(id="local")
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.roles = ("admin",)  # type: ignore[misc]
    result = ToolResult.text("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.is_error = True  # type: ignore[misc]


def test_result_text_builds_one_text_block_and_carries_the_error_flag() -> None:
    ok = ToolResult.text("hello")
    failed = ToolResult.text("boom", is_error=True)
    assert list(ok.content) == [types.TextContent(type="text", text="hello")]
    assert ok.is_error is False
    assert ok.structured is None
    assert failed.is_error is True


def test_defaults_describe_a_local_stdio_principal_and_a_unit_cost_tool() -> None:
    principal = Principal(id="local")
    assert principal.roles == ()
    assert principal.transport == "stdio"
    tool = _tool()
    assert tool.cost == 1.0
    assert tool.annotations == ToolAnnotations()
    assert tool.output_schema is None
    assert dict(tool.meta) == {}


def test_call_contexts_do_not_share_their_extras() -> None:
    first = CallContext(principal=Principal(id="a"))
    second = CallContext(principal=Principal(id="b"))
    first.extras["k"] = "v"
    assert second.extras == {}
