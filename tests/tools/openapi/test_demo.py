"""`toolkiln demo` works offline with no setup: a real process, a real MCP client over stdio and
over Streamable HTTP, and every tool of the bundled API called once."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.tools.openapi.conftest import PNG_1X1, http_process
from tools.model import is_valid_tool_name

pytestmark = pytest.mark.anyio

DEMO_TOOLS = {"listBooks", "createBook", "searchBooks", "getBook", "deleteBook", "addReview", "uploadCover", "whoAmI"}


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "server", "demo", *args]


async def exercise(client: Client) -> None:
    """Call every demo tool; each input kind must reach the API and come back as structured JSON."""
    listed = (await client.list_tools()).tools
    assert {tool.name for tool in listed} == DEMO_TOOLS
    assert all(is_valid_tool_name(tool.name) for tool in listed)
    by_name = {tool.name: tool for tool in listed}
    assert by_name["deleteBook"].annotations is not None
    assert by_name["deleteBook"].annotations.destructive_hint is True

    async def ok(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await client.call_tool(name, arguments)
        assert isinstance(result, types.CallToolResult)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content

    listed_books = await ok("listBooks", {"q": "design", "tag": ["design", "databases"], "X-Request-Id": "req-7"})
    assert (listed_books["total"], listed_books["request_id"]) == (2, "req-7")
    created = await ok(
        "createBook", {"title": "Refactoring", "author": "Martin Fowler", "tags": ["craft"], "year": 1999}
    )
    assert (await ok("getBook", {"bookId": created["id"]}))["title"] == "Refactoring"
    found = await ok("searchBooks", {"filter": {"author": "fowler", "year_from": 1990}})
    assert [book["id"] for book in found["items"]] == [created["id"]]
    review = await ok("addReview", {"bookId": created["id"], "rating": 4, "comment": "tidy & clear"})
    assert (review["rating"], review["comment"]) == (4, "tidy & clear")
    cover = await ok("uploadCover", {"bookId": 1, "file": base64.b64encode(PNG_1X1).decode(), "caption": "c"})
    assert (cover["bytes"], cover["content_type"]) == (len(PNG_1X1), "image/png")
    assert (await ok("whoAmI", {"session": "s-1"}))["session"] == "s-1"

    deleted = await client.call_tool("deleteBook", {"bookId": created["id"]})
    assert isinstance(deleted, types.CallToolResult)
    assert not deleted.is_error
    missing = await client.call_tool("getBook", {"bookId": created["id"]})
    assert isinstance(missing, types.CallToolResult)
    assert missing.is_error
    assert missing.content[0].text.startswith("Upstream returned HTTP 404 Not Found")  # type: ignore[union-attr]


async def test_demo_over_stdio_serves_every_tool_of_the_bundled_api(tmp_path: Path) -> None:
    command = demo_command()
    params = StdioServerParameters(command=command[0], args=command[1:], cwd=tmp_path)
    async with Client(params) as client:
        await exercise(client)
    assert list(tmp_path.iterdir()) == []  # no setup, and nothing left behind


@pytest.fixture
def demo_http(tmp_path: Path) -> Iterator[str]:
    """`toolkiln demo --transport http --port 0`, yielding its MCP URL once it listens."""
    with http_process(demo_command("--transport", "http", "--port", "0"), tmp_path) as url:
        yield url


async def test_demo_over_streamable_http_serves_every_tool_of_the_bundled_api(demo_http: str) -> None:
    async with Client(demo_http) as client:
        await exercise(client)


def test_demo_spec_ships_as_package_data() -> None:
    from server.demo.run import demo_spec

    with demo_spec() as path:
        text = path.read_text(encoding="utf-8")
    assert text.startswith("openapi: 3.1.0")
