"""The local dev loop: `toolkiln tools` and `toolkiln call` as real MCP clients of the server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client, StdioServerParameters

from server.config import Settings
from tools.openapi.cli import specs_from_args

__all__ = ["EXIT_USAGE", "run_call", "run_tools", "server_target"]

EXIT_USAGE = 2


def server_target(settings: Settings, args: argparse.Namespace) -> str | StdioServerParameters:
    """The running server at `--url`, or `toolkiln serve` launched over stdio with the same config
    and the same `--spec`/`--base-url` options.

    Raises:
        ValueError: `--spec` with `--url` (a running server's sources are its own), or a `--spec`
            or `--base-url` value the server would refuse.
    """
    specs = getattr(args, "specs", None) or []
    if args.url:
        if specs:
            raise ValueError("--spec launches a server of its own; it cannot be combined with --url")
        return str(args.url)
    # Refused here, with the option's own message, rather than as a server that failed to start.
    specs_from_args(specs)
    command = [sys.executable, "-m", "server", "serve", "--transport", "stdio"]
    if settings.source_path is not None:
        command += ["--config", str(settings.source_path)]
    if args.conformance_fixtures:
        command.append("--conformance-fixtures")
    for item in specs:
        command += ["--spec", _absolute(item["spec"])]
        if item["base_url"] is not None:
            command += ["--base-url", item["base_url"]]
    # The child's info logs would drown the answer on this terminal; warnings still show.
    env = dict(os.environ)
    env.setdefault("TOOLKILN_LOG_LEVEL", "warning")
    return StdioServerParameters(command=command[0], args=command[1:], env=env)


def _absolute(spec: str) -> str:
    if spec.lower().startswith(("http://", "https://")):
        return spec
    return str(Path(spec).expanduser().absolute())


def _target_or_exit(settings: Settings, args: argparse.Namespace) -> str | StdioServerParameters | None:
    try:
        return server_target(settings, args)
    except ValueError as exc:
        print(f"toolkiln: {exc}", file=sys.stderr)
        return None


async def run_tools(settings: Settings, args: argparse.Namespace) -> int:
    target = _target_or_exit(settings, args)
    if target is None:
        return EXIT_USAGE
    async with Client(target) as client:
        result = await client.list_tools()
    if args.json:
        print(result.model_dump_json(by_alias=True, exclude_none=True, indent=2))
        return 0
    if not result.tools:
        print("(no tools)")
    for tool in result.tools:
        hints = _hints(tool)
        summary = (tool.description or "").strip().splitlines()[0:1]
        print(f"{tool.name}{hints}  {summary[0] if summary else ''}".rstrip())
    return 0


async def run_call(settings: Settings, args: argparse.Namespace, arguments: dict[str, Any]) -> int:
    target = _target_or_exit(settings, args)
    if target is None:
        return EXIT_USAGE
    async with Client(target) as client:
        try:
            result = await client.call_tool(args.name, arguments)
        except Exception as exc:  # a JSON-RPC error (unknown tool) is reported, not a traceback
            print(f"toolkiln: {exc}", file=sys.stderr)
            return 1
    if isinstance(result, types.CallToolResult):
        if result.structured_content is not None:
            print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
        else:
            for block in result.content:
                print(block.text if isinstance(block, types.TextContent) else block.model_dump_json(by_alias=True))
        return 1 if result.is_error else 0
    print(result.model_dump_json(by_alias=True, exclude_none=True, indent=2))
    return 0


def _hints(tool: types.Tool) -> str:
    notes = []
    if tool.annotations is not None:
        if tool.annotations.read_only_hint:
            notes.append("read-only")
        if tool.annotations.destructive_hint:
            notes.append("destructive")
    return f" [{', '.join(notes)}]" if notes else ""
