"""Launcher for the role-matrix tests: the real `toolkiln` CLI plus a small annotated tool set.

Run as a script (`python test_role_matrix_server.py serve --transport http …`); it has no tests of
its own. The demo tools cover every access class the built-in roles distinguish.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tools.model import CallContext, Tool, ToolAnnotations, ToolResult

SOURCE = "demo"
READ = ToolAnnotations(read_only=True)
WRITE = ToolAnnotations(read_only=False, destructive=False)
DESTRUCTIVE = ToolAnnotations(read_only=False, destructive=True)
_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}


async def _done(_: Mapping[str, Any], __: CallContext) -> ToolResult:
    return ToolResult.text("done")


async def _whoami(_: Mapping[str, Any], context: CallContext) -> ToolResult:
    http_request = getattr(context.request, "request", None)
    headers = getattr(http_request, "headers", None)
    seen = headers is not None and any(name.lower() == "authorization" for name in headers)
    return ToolResult(
        content=[],
        structured={
            "principal": context.principal.id,
            "roles": list(context.principal.roles),
            "transport": context.principal.transport,
            "authorization_header_seen": seen,
        },
    )


def _tool(name: str, annotations: ToolAnnotations, *, tags: tuple[str, ...] = (), executor: Any = _done) -> Tool:
    return Tool(
        name=name,
        description=f"demo tool {name}",
        input_schema=_NO_ARGS,
        executor=executor,
        source=SOURCE,
        annotations=annotations,
        tags=tags,
    )


DEMO_TOOLS = (
    _tool("notes.read", READ),
    _tool("whoami", READ, executor=_whoami),
    _tool("notes.append", WRITE),
    _tool("notes.delete", DESTRUCTIVE),
    _tool("legacy.touch", ToolAnnotations()),
    _tool("modules.approve", WRITE, tags=("admin",)),
)

# What each built-in role may call, hence exactly what it must see.
EXPECTED = {
    "readonly": {"notes.read", "whoami"},
    "agent": {"notes.read", "whoami", "notes.append"},
    "developer": {"notes.read", "whoami", "notes.append", "notes.delete", "legacy.touch"},
    "admin": {tool.name for tool in DEMO_TOOLS},
}


def main(argv: list[str]) -> int:
    import server.sources
    from server.cli import main as cli_main
    from server.runtime import Runtime

    original = server.sources.install_sources

    def install(runtime: Runtime, *args: Any, **kwargs: Any) -> None:
        original(runtime, *args, **kwargs)
        runtime.registry.replace_source(SOURCE, DEMO_TOOLS)

    server.sources.install_sources = install
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
