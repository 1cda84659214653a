"""The `toolkiln` command line: version, help on every command, argument parsing, and the local
dev loop (`tools`, `call`) acting as a real MCP client of `toolkiln serve` over stdio."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.cli import _parser, main
from server.commands import ALL_COMMANDS
from server.commands.call import parse_call_arguments
from server.version import __version__
from tests.support.servers import toolkiln_command

SIMPLE_TEXT = "This is a simple text response for testing."


def _run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")}
    return subprocess.run(
        toolkiln_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every subcommand path, nested ones included (`tokens create`, `audit verify`, …)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                yield path
                yield from _command_paths(sub, path)


COMMAND_PATHS = sorted(_command_paths(_parser()))


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    done = _run("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == f"toolkiln {__version__}\n"


def test_no_command_prints_help_on_stderr_and_exits_2(tmp_path: Path) -> None:
    done = _run(cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: toolkiln")
    for command in ALL_COMMANDS:
        assert command.name in done.stderr


def test_an_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    done = _run("frobnicate", cwd=tmp_path)
    assert done.returncode == 2
    assert "invalid choice: 'frobnicate'" in done.stderr


def test_every_top_level_command_is_reachable() -> None:
    top = {path[0] for path in COMMAND_PATHS}
    assert top == {command.name for command in ALL_COMMANDS}
    assert {"serve", "tools", "call", "init"} <= top


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_help_works_for_every_command_and_subcommand(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*path, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: toolkiln {' '.join(path)}")
    assert "-h, --help" in out


# --- k=v and --json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param(["n=1"], {"n": 1}, id="integer"),
        pytest.param(["x=1.5"], {"x": 1.5}, id="float"),
        pytest.param(["b=true"], {"b": True}, id="boolean"),
        pytest.param(["v=null"], {"v": None}, id="null"),
        pytest.param(["s=hello"], {"s": "hello"}, id="bare-word-is-a-string"),
        pytest.param(['s="1"'], {"s": "1"}, id="quoted-number-is-a-string"),
        pytest.param(['o={"k": [1, 2]}'], {"o": {"k": [1, 2]}}, id="object"),
        pytest.param(['l=[1,"a"]'], {"l": [1, "a"]}, id="array"),
        pytest.param(["e="], {"e": ""}, id="empty-value"),
        pytest.param(["u=a=b"], {"u": "a=b"}, id="equals-inside-value"),
        pytest.param(["sp= padded "], {"sp": " padded "}, id="spaces-kept"),
        pytest.param(["f=NaN"], {"f": "NaN"}, id="NaN-stays-a-string"),
        pytest.param(["f=-Infinity"], {"f": "-Infinity"}, id="Infinity-stays-a-string"),
        pytest.param(["f=1e999"], {"f": "1e999"}, id="overflowing-float-stays-a-string"),
        pytest.param(["a=1", "b=two"], {"a": 1, "b": "two"}, id="several"),
        pytest.param([], {}, id="none"),
    ],
)
def test_k_v_values_are_json_when_they_parse_and_strings_otherwise(pairs: list[str], expected: dict[str, Any]) -> None:
    assert parse_call_arguments(pairs, None) == expected


@pytest.mark.parametrize(
    ("pairs", "json_args", "problem"),
    [
        pytest.param(["novalue"], None, "is not of the form k=v", id="no-equals"),
        pytest.param(["=v"], None, "is not of the form k=v", id="empty-key"),
        pytest.param(["a=1", "a=2"], None, "given more than once", id="repeated-key"),
        pytest.param(["a=1"], "{}", "not both", id="pairs-and-json"),
        pytest.param([], "[1, 2]", "must be a JSON object", id="json-array"),
        pytest.param([], '"text"', "must be a JSON object", id="json-string"),
        pytest.param([], "{nope", "--json is not valid JSON", id="json-garbage"),
        pytest.param([], '{"a": NaN}', "NaN is not JSON", id="json-NaN"),
        pytest.param([], '{"a": 1, "a": 2}', "appears twice", id="json-duplicate-key"),
    ],
)
def test_malformed_arguments_are_refused_with_a_reason(pairs: list[str], json_args: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_call_arguments(pairs, json_args)


def test_json_arguments_are_taken_as_one_object() -> None:
    assert parse_call_arguments([], '{"region": "eu", "n": [1, {"x": null}]}') == {
        "region": "eu",
        "n": [1, {"x": None}],
    }


def test_call_with_bad_arguments_exits_2_before_starting_a_server(tmp_path: Path) -> None:
    done = _run("call", "test_simple_text", "oops", "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "toolkiln: argument 'oops' is not of the form k=v"
    assert not (tmp_path / ".toolkiln").exists(), "no server was launched"


# --- tools and call as real MCP clients over stdio --------------------------------------------


def test_tools_lists_the_fixture_tools_over_stdio(tmp_path: Path) -> None:
    done = _run("tools", "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "test_simple_text  Tests simple text content response" in lines
    assert any(line.startswith("test_x_mcp_header") for line in lines)


def test_tools_json_is_the_tools_list_result(tmp_path: Path) -> None:
    done = _run("tools", "--json", "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = {tool["name"]: tool for tool in json.loads(done.stdout)["tools"]}
    assert listed["test_simple_text"]["inputSchema"] == {"type": "object", "properties": {}}
    assert listed["test_x_mcp_header"]["inputSchema"]["required"] == ["region"]


def test_call_prints_the_tool_text_and_exits_0(tmp_path: Path) -> None:
    done = _run("call", "test_simple_text", "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{SIMPLE_TEXT}\n"


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(["region=eu", "query=hello world"], id="k=v"),
        pytest.param(["--json", '{"region": "eu", "query": "hello world"}'], id="json"),
    ],
)
def test_call_sends_k_v_and_json_arguments_to_the_server(tmp_path: Path, arguments: list[str]) -> None:
    done = _run("call", "test_x_mcp_header", *arguments, "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Routed to region eu\n"


def test_a_k_v_number_reaches_the_server_as_a_number_and_strict_validation_refuses_it(tmp_path: Path) -> None:
    refused = _run("call", "test_x_mcp_header", "region=1", "--conformance-fixtures", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stdout == (
        "Invalid arguments for tool 'test_x_mcp_header': arguments.region: expected string, got number\n"
    )
    quoted = _run("call", "test_x_mcp_header", 'region="1"', "--conformance-fixtures", cwd=tmp_path)
    assert quoted.returncode == 0, quoted.stderr
    assert quoted.stdout == "Routed to region 1\n"


def test_calling_an_unknown_tool_reports_it_on_stderr_and_exits_1(tmp_path: Path) -> None:
    done = _run("call", "no_such_tool", "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Unknown tool: no_such_tool" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_tool_error_result_is_printed_and_exits_1(tmp_path: Path) -> None:
    done = _run("call", "test_error_handling", "--conformance-fixtures", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.strip() != ""
    assert "Traceback" not in done.stderr
