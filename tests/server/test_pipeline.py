"""The one call pipeline: step order, exact resolution, strict validation, deadline, executor boundary."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from structlog.testing import capture_logs

from server.pipeline import CallNext, Step, ToolCall, build_pipeline
from server.pipeline.validate import _CompiledSchema, argument_problems
from tests.server.harness import HideTools, connect, echo, make_runtime, make_tool
from tests.support.servers import ROOT
from tools.errors import InvalidArguments, ToolCrashed, ToolTimeout, UnknownTool
from tools.model import CallContext, Principal, ToolOutcome, ToolResult
from tools.registry import ToolRegistry

pytestmark = pytest.mark.anyio

LOCAL = Principal(id="local")
ERAS = [pytest.param("legacy", id="handshake-era"), pytest.param("auto", id="2026-07-28")]


def _context() -> CallContext:
    return CallContext(principal=LOCAL)


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


class Recorder(Step):
    """Notes what it saw on the way in and out."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self.journal = journal

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        self.journal.append(f"{self.name}:in tool={call.resolved.name} args={dict(call.checked_arguments)}")
        try:
            return await call_next(call)
        finally:
            self.journal.append(f"{self.name}:out")


# --- step order -------------------------------------------------------------------------------


def test_the_standard_order_is_log_resolve_validate_then_extra_steps_then_deadline() -> None:
    pipeline = build_pipeline(ToolRegistry(), call_timeout_s=5, after_validation=[Recorder("a", []), Recorder("b", [])])
    names = [step.name for step in pipeline.steps]
    assert names[:3] == ["log", "resolve", "validate"]
    assert names[-3:] == ["a", "b", "deadline"]


async def test_extra_steps_see_the_resolved_tool_and_checked_arguments_and_wrap_the_executor() -> None:
    journal: list[str] = []

    async def executor(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        journal.append(f"execute deadline={context.deadline_s}")
        return ToolResult.text("done")

    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("work", executor)])
    pipeline = build_pipeline(
        registry, call_timeout_s=7, after_validation=[Recorder("a", journal), Recorder("b", journal)]
    )
    result = await pipeline.call_tool("work", {"text": "hi"}, _context())
    assert isinstance(result, ToolResult)
    assert journal == [
        "a:in tool=work args={'text': 'hi'}",
        "b:in tool=work args={'text': 'hi'}",
        "execute deadline=7.0",
        "b:out",
        "a:out",
    ]


async def test_a_rejected_call_never_reaches_the_later_steps_or_the_executor() -> None:
    journal: list[str] = []
    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("work")])
    pipeline = build_pipeline(registry, call_timeout_s=5, after_validation=[Recorder("a", journal)])
    with pytest.raises(UnknownTool):
        await pipeline.call_tool("missing", {}, _context())
    with pytest.raises(InvalidArguments):
        await pipeline.call_tool("work", {"text": 1}, _context())
    assert journal == []


# --- resolution -------------------------------------------------------------------------------

NAME_TRICKS = [
    pytest.param("Echo", id="capitalised"),
    pytest.param("ECHO", id="upper-case"),
    pytest.param("echo ", id="trailing-space"),
    pytest.param(" echo", id="leading-space"),
    pytest.param("echo\u200b", id="zero-width-space-after"),
    pytest.param("\u200becho", id="zero-width-space-before"),
    pytest.param("ec\u200dho", id="zero-width-joiner-inside"),
    pytest.param("ech\u043e", id="cyrillic-o-confusable"),
    pytest.param("echo\n", id="trailing-newline"),
    pytest.param("echo\t", id="trailing-tab"),
    pytest.param("echo\x00", id="trailing-nul"),
    pytest.param("ｅｃｈｏ", id="fullwidth"),
    pytest.param("test.echo", id="source-prefixed"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("name", NAME_TRICKS)
async def test_only_the_exact_name_resolves(name: str) -> None:
    calls: list[str] = []

    async def executor(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        calls.append("ran")
        return ToolResult.text("ran")

    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("echo", executor)])
    pipeline = build_pipeline(registry, call_timeout_s=5)
    with pytest.raises(UnknownTool) as caught:
        await pipeline.call_tool(name, {"text": "x"}, _context())
    assert caught.value.name == name
    assert calls == []
    assert isinstance(await pipeline.call_tool("echo", {"text": "x"}, _context()), ToolResult)


@pytest.mark.parametrize("name", [pytest.param(123, id="int"), pytest.param(None, id="null")])
async def test_a_name_that_is_not_a_string_is_an_unknown_tool(name: object) -> None:
    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("echo")])
    pipeline = build_pipeline(registry, call_timeout_s=5)
    with pytest.raises(UnknownTool):
        await pipeline.call_tool(name, {}, _context())  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize(
    "name",
    [pytest.param("ECHO", id="case"), pytest.param("echo\u200b", id="zero-width"), pytest.param("echo ", id="space")],
)
async def test_a_name_trick_over_the_wire_is_minus_32602_unknown_tool(tmp_path: Path, mode: str, name: str) -> None:
    async with connect(make_runtime(tmp_path, [make_tool("echo")]), mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool(name, {"text": "x"})
    assert caught.value.error.code == -32602
    assert caught.value.error.message == f"Unknown tool: {name}"


# --- hidden == unknown (THREATS R1) -----------------------------------------------------------


async def _vault_error(data_dir: Path, *, hidden: bool, mode: str) -> tuple[types.ErrorData, list[str]]:
    tools = [make_tool("echo"), make_tool("vault")] if hidden else [make_tool("echo")]
    runtime = make_runtime(data_dir, tools, extra_steps=[HideTools("vault")])
    async with connect(runtime, mode) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        with pytest.raises(MCPError) as caught:
            await client.call_tool("vault", {"text": "x"})
    return caught.value.error, listed


@pytest.mark.parametrize("mode", ERAS)
async def test_a_hidden_tool_is_unlisted_and_fails_exactly_like_a_missing_one(tmp_path: Path, mode: str) -> None:
    # THREATS R1
    hidden_error, hidden_list = await _vault_error(tmp_path / "hidden", hidden=True, mode=mode)
    absent_error, absent_list = await _vault_error(tmp_path / "absent", hidden=False, mode=mode)
    assert hidden_list == absent_list == ["echo"]
    assert hidden_error.model_dump(by_alias=True) == absent_error.model_dump(by_alias=True)
    assert hidden_error.code == -32602


def _stdio_exchange(data_dir: Path, variant: str) -> dict[int, bytes]:
    """Raw response lines (by id) from a real stdio server for a handshake, a call and a list."""
    requests: list[dict[str, Any]] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "vault", "arguments": {"text": "x"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.server.stdio_app", str(data_dir), variant],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    answers: dict[int, bytes] = {}
    try:
        for request in requests:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
            if "id" in request:
                line = process.stdout.readline()
                answers[json.loads(line)["id"]] = line
    finally:
        process.stdin.close()
        process.wait(timeout=20)
        process.stdout.close()
    return answers


def test_hidden_and_missing_tools_get_byte_identical_answers_over_real_stdio(tmp_path: Path) -> None:
    # THREATS R1: no enumeration through the error or the listing.
    hidden = _stdio_exchange(tmp_path / "hidden", "hidden")
    absent = _stdio_exchange(tmp_path / "absent", "absent")
    assert hidden[2] == absent[2]
    assert json.loads(hidden[2])["error"] == {"code": -32602, "message": "Unknown tool: vault"}
    assert hidden[3] == absent[3]
    assert [tool["name"] for tool in json.loads(hidden[3])["result"]["tools"]] == ["echo"]


# --- validation (THREATS A1, A2, A3) ----------------------------------------------------------

TYPED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "flag": {"type": "boolean"},
        "ratio": {"type": "number"},
        "name": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "opts": {"type": "object"},
        "mode": {"enum": ["fast", "safe"]},
        "code": {"type": "string", "maxLength": 8},
    },
}


async def _validate(arguments: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """The problems the pipeline names for `arguments`; [] when the executor ran."""
    seen: list[Mapping[str, Any]] = []

    async def executor(checked: Mapping[str, Any], context: CallContext) -> ToolResult:
        seen.append(checked)
        return ToolResult.text("ok")

    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("typed", executor, schema=schema or TYPED_SCHEMA)])
    pipeline = build_pipeline(registry, call_timeout_s=5)
    problems: list[str] = []
    try:
        await pipeline.call_tool("typed", arguments, _context())
    except InvalidArguments as error:
        problems = error.problems
    assert len(seen) == (0 if problems else 1), "the executor runs exactly when nothing is wrong"
    return problems


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        pytest.param({"count": "1"}, "arguments.count: expected integer, got string", id="string-for-integer"),
        pytest.param({"count": True}, "arguments.count: expected integer, got boolean", id="bool-for-integer"),
        pytest.param({"count": 1.5}, "arguments.count: expected integer, got number", id="fraction-for-integer"),
        pytest.param({"flag": "true"}, "arguments.flag: expected boolean, got string", id="string-true"),
        pytest.param({"flag": 1}, "arguments.flag: expected boolean, got number", id="one-for-boolean"),
        pytest.param({"ratio": "0.5"}, "arguments.ratio: expected number, got string", id="string-for-number"),
        pytest.param({"name": None}, "arguments.name: expected string, got null", id="null-for-string"),
        pytest.param({"name": 5}, "arguments.name: expected string, got number", id="number-for-string"),
        pytest.param({"tags": "a,b"}, "arguments.tags: expected array, got string", id="string-for-array"),
        pytest.param({"tags": ["a", 2]}, "arguments.tags[1]: expected string, got number", id="bad-array-item"),
        pytest.param({"opts": "{}"}, "arguments.opts: expected object, got string", id="string-for-object"),
        pytest.param({"mode": "FAST"}, "arguments.mode: 'FAST' is not one of", id="enum-case"),
    ],
)
async def test_validation_never_coerces(arguments: dict[str, Any], problem: str) -> None:
    # THREATS A2
    problems = await _validate(arguments)
    assert len(problems) == 1
    assert problems[0].startswith(problem)


async def test_checked_arguments_reach_the_executor_unchanged() -> None:
    received: list[Mapping[str, Any]] = []

    async def executor(checked: Mapping[str, Any], context: CallContext) -> ToolResult:
        received.append(checked)
        return ToolResult.text("ok")

    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("typed", executor, schema=TYPED_SCHEMA)])
    pipeline = build_pipeline(registry, call_timeout_s=5)
    sent = {"count": 3, "flag": False, "ratio": 1, "name": "n", "tags": ["a"], "opts": {"k": [1]}, "mode": "safe"}
    await pipeline.call_tool("typed", sent, _context())
    assert received == [sent]
    assert type(received[0]["count"]) is int
    assert type(received[0]["flag"]) is bool


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"extra": 1}, id="one-unknown"),
        pytest.param({"name": "ok", "api_key": "sk-live"}, id="credential-shaped"),
        pytest.param({"Name": "x"}, id="case-variant-of-known"),
        pytest.param({"name\u200b": "x"}, id="zero-width-variant-of-known"),
    ],
)
async def test_an_argument_the_schema_does_not_name_is_rejected(arguments: dict[str, Any]) -> None:
    # THREATS A1
    problems = await _validate(arguments)
    unknown = [key for key in arguments if key not in TYPED_SCHEMA["properties"]]
    assert problems == [f"arguments: unknown argument '{key}'" for key in unknown]


async def test_extra_arguments_pass_only_when_the_schema_says_so() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}}
    assert await _validate({"a": "x", "b": 2}, schema) == []
    assert await _validate({"a": "x", "b": "2"}, schema) == ["arguments.b: expected integer, got string"]


async def test_every_problem_is_named_in_one_answer() -> None:
    schema = {**TYPED_SCHEMA, "required": ["name"]}
    problems = await _validate({"count": "1", "flag": "yes", "bogus": 1}, schema)
    assert problems == [
        "arguments: unknown argument 'bogus'",
        "arguments: 'name' is a required property",
        "arguments.count: expected integer, got string",
        "arguments.flag: expected boolean, got string",
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("count", "9" * 10_000_000, id="10MB-string-for-integer"),
        pytest.param("mode", "x" * 10_000_000, id="10MB-string-for-enum"),
        pytest.param("code", "y" * 10_000_000, id="10MB-string-past-maxLength"),
        pytest.param("z" * 1_000_000, 1, id="1MB-argument-name"),
    ],
)
async def test_huge_values_are_not_echoed_back(key: str, value: object) -> None:
    # THREATS A3: the answer names the problem in a few hundred characters at most.
    problems = await _validate({key: value})
    message = InvalidArguments("typed", problems).message
    assert len(problems) == 1
    assert len(message) < 400
    hostile = value if isinstance(value, str) else key
    assert hostile[:200] not in message


async def test_a_million_bad_array_items_cost_ten_problems_not_a_million() -> None:
    # THREATS A3: bounded work, so one request cannot stall the event loop for everyone.
    started = time.perf_counter()
    problems = await _validate({"tags": [0] * 1_000_000})
    assert len(problems) == 10
    assert problems[0] == "arguments.tags[0]: expected string, got number"
    assert time.perf_counter() - started < 5


async def test_missing_arguments_are_an_empty_object_and_a_non_object_is_refused() -> None:
    assert await _validate(None) == []
    assert await _validate([1, 2]) == ["arguments: expected an object, got array"]
    assert await _validate("x") == ["arguments: expected an object, got string"]


@pytest.mark.parametrize("mode", ERAS)
async def test_invalid_arguments_come_back_as_an_error_result_naming_the_problems(tmp_path: Path, mode: str) -> None:
    async with connect(make_runtime(tmp_path, [make_tool("echo")]), mode) as client:
        result = await client.call_tool("echo", {"text": 5, "extra": True})
    assert isinstance(result, types.CallToolResult)
    assert result.is_error
    assert _text(result) == (
        "Invalid arguments for tool 'echo': arguments: unknown argument 'extra'; "
        "arguments.text: expected string, got number"
    )


# --- deadline ---------------------------------------------------------------------------------


def _stalling_tool(name: str, released: list[str], meta: Mapping[str, Any] | None = None) -> Any:
    async def stall(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        try:
            await anyio.Event().wait()  # never set: only the deadline ends this call
        finally:
            released.append(name)
        raise AssertionError("unreachable")

    return make_tool(name, stall, meta=meta)


async def test_a_slow_executor_is_cancelled_at_the_deadline_as_a_tool_timeout() -> None:
    released: list[str] = []
    registry = ToolRegistry()
    registry.replace_source("test", [_stalling_tool("slow", released)])
    pipeline = build_pipeline(registry, call_timeout_s=0.1)
    with pytest.raises(ToolTimeout) as caught:
        await pipeline.call_tool("slow", {"text": "x"}, _context())
    assert caught.value.message == "Tool 'slow' timed out after 0.1 s"
    assert released == ["slow"], "the executor was cancelled, not abandoned"


async def test_a_tool_may_ask_for_a_shorter_deadline_but_never_a_longer_one() -> None:
    released: list[str] = []
    registry = ToolRegistry()
    registry.replace_source(
        "test",
        [
            _stalling_tool("short", released, meta={"timeout_s": 0.05}),
            _stalling_tool("greedy", released, meta={"timeout_s": 3600}),
        ],
    )
    pipeline = build_pipeline(registry, call_timeout_s=0.2)
    with pytest.raises(ToolTimeout, match=r"after 0\.05 s"):
        await pipeline.call_tool("short", {"text": "x"}, _context())
    with pytest.raises(ToolTimeout, match=r"after 0\.2 s"):
        await pipeline.call_tool("greedy", {"text": "x"}, _context())


@pytest.mark.parametrize("mode", ERAS)
async def test_a_timed_out_call_is_an_error_result_and_the_server_keeps_serving(tmp_path: Path, mode: str) -> None:
    released: list[str] = []
    runtime = make_runtime(tmp_path, [_stalling_tool("slow", released), make_tool("echo")], call_timeout_s=0.1)
    async with connect(runtime, mode) as client:
        timed_out = await client.call_tool("slow", {"text": "x"})
        after = await client.call_tool("echo", {"text": "still here"})
    assert timed_out.is_error
    assert _text(timed_out) == "Tool 'slow' timed out after 0.1 s"
    assert not after.is_error
    assert _text(after) == "still here"


# --- the executor boundary --------------------------------------------------------------------


class OddBaseError(BaseException):
    pass


CRASHES = [
    pytest.param(ValueError("bad value"), "Tool 'boom' failed: bad value", id="ValueError"),
    pytest.param(KeyError("k"), "Tool 'boom' failed: 'k'", id="KeyError"),
    pytest.param(RuntimeError(), "Tool 'boom' failed: RuntimeError", id="empty-message"),
    pytest.param(ZeroDivisionError("division by zero"), "Tool 'boom' failed: division by zero", id="ZeroDivision"),
    pytest.param(RecursionError("deep"), "Tool 'boom' failed: deep", id="RecursionError"),
    pytest.param(OSError(2, "No such file"), "Tool 'boom' failed: [Errno 2] No such file", id="OSError"),
    pytest.param(SystemExit(3), "Tool 'boom' failed: 3", id="SystemExit"),
    pytest.param(KeyboardInterrupt("stop"), "Tool 'boom' failed: stop", id="KeyboardInterrupt"),
    pytest.param(OddBaseError("odd"), "Tool 'boom' failed: odd", id="custom-BaseException"),
    pytest.param(ValueError("x" * 5000), "Tool 'boom' failed: " + "x" * 300, id="long-message-truncated"),
]


@pytest.mark.parametrize(("exc", "message"), CRASHES)
async def test_anything_an_executor_raises_becomes_tool_crashed(exc: BaseException, message: str) -> None:
    async def boom(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        raise exc

    registry = ToolRegistry()
    registry.replace_source("test", [make_tool("boom", boom)])
    pipeline = build_pipeline(registry, call_timeout_s=5)
    with capture_logs() as logs, pytest.raises(ToolCrashed) as caught:
        await pipeline.call_tool("boom", {"text": "x"}, _context())
    assert caught.value.message == message
    assert caught.value.__cause__ is exc
    crashed = [entry for entry in logs if entry["event"] == "tool_crashed"]
    assert crashed
    assert crashed[0]["tool"] == "boom"


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(ValueError("bad"), id="ValueError"),
        pytest.param(SystemExit(1), id="SystemExit"),
        pytest.param(KeyboardInterrupt(), id="KeyboardInterrupt"),
        pytest.param(OddBaseError("odd"), id="custom-BaseException"),
    ],
)
async def test_a_crashing_tool_is_an_error_result_and_the_server_keeps_serving(
    tmp_path: Path, mode: str, exc: BaseException
) -> None:
    async def boom(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        raise exc

    runtime = make_runtime(tmp_path, [make_tool("boom", boom), make_tool("echo")])
    async with connect(runtime, mode) as client:
        crashed = await client.call_tool("boom", {"text": "x"})
        again = await client.call_tool("boom", {"text": "x"})
        after = await client.call_tool("echo", {"text": "alive"})
    assert crashed.is_error
    assert again.is_error
    assert _text(crashed).startswith("Tool 'boom' failed")
    assert not after.is_error
    assert _text(after) == "alive"


class BrokenStep(Step):
    name = "broken"

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        raise ValueError("/srv/toolkiln/internal/state.db is locked")


@pytest.mark.parametrize("mode", ERAS)
async def test_a_bug_in_a_step_is_a_bare_internal_error_that_leaks_nothing(tmp_path: Path, mode: str) -> None:
    runtime = make_runtime(tmp_path, [make_tool("echo")], extra_steps=[BrokenStep()])
    with capture_logs() as logs:
        async with connect(runtime, mode) as client:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("echo", {"text": "x"})
    assert caught.value.error.code == -32603
    assert "state.db" not in caught.value.error.message
    assert caught.value.error.data is None
    assert any(entry["event"] == "tool_call_failed" for entry in logs)


# --- the call log -----------------------------------------------------------------------------


async def test_every_call_logs_one_line_with_its_outcome_and_never_its_arguments() -> None:
    released: list[str] = []

    async def fails(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        return ToolResult.text("no", is_error=True)

    async def boom(arguments: Mapping[str, Any], context: CallContext) -> ToolResult:
        raise ValueError("bad")

    registry = ToolRegistry()
    registry.replace_source(
        "test",
        [
            make_tool("echo", echo),
            make_tool("fails", fails),
            make_tool("boom", boom),
            _stalling_tool("slow", released, meta={"timeout_s": 0.05}),
        ],
    )
    pipeline = build_pipeline(registry, call_timeout_s=5)
    attempts = [
        ("echo", {"text": "secret-argument-value"}),
        ("fails", {"text": "x"}),
        ("missing", {}),
        ("echo", {"text": 1}),
        ("boom", {"text": "x"}),
        ("slow", {"text": "x"}),
    ]
    with capture_logs() as logs:
        for name, arguments in attempts:
            with contextlib.suppress(UnknownTool, InvalidArguments, ToolCrashed, ToolTimeout):
                await pipeline.call_tool(name, arguments, _context())
    lines = [entry for entry in logs if entry["event"] == "tool_call"]
    assert [(entry["tool"], entry["outcome"]) for entry in lines] == [
        ("echo", "ok"),
        ("fails", "tool_error"),
        ("missing", "rejected"),
        ("echo", "InvalidArguments"),
        ("boom", "ToolCrashed"),
        ("slow", "ToolTimeout"),
    ]
    assert all(entry["principal"] == "local" and entry["ms"] >= 0 for entry in lines)
    assert "secret-argument-value" not in repr(logs)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("n" * 1_000_000, id="megabyte-name"),
        pytest.param('evil\r\n{"event": "forged"}\x1b[2J' + "x" * 500, id="crlf-ansi-name"),
    ],
)
async def test_a_hostile_tool_name_is_logged_bounded(name: str) -> None:
    # THREATS A3: the log line carries at most 128 characters of a name the caller made up.
    pipeline = build_pipeline(ToolRegistry(), call_timeout_s=5)
    with capture_logs() as logs, pytest.raises(UnknownTool):
        await pipeline.call_tool(name, {}, _context())
    (line,) = [entry for entry in logs if entry["event"] == "tool_call"]
    assert line["tool"] == name[:128]
    assert line["outcome"] == "rejected"


FLAT_SCHEMAS = [
    {"type": "object", "properties": {"item_id": {"type": "integer"}}, "required": ["item_id"]},
    {
        "type": "object",
        "properties": {
            "q": {"type": "string", "description": "query"},
            "limit": {"type": "integer", "default": 10},
            "ratio": {"type": "number"},
            "on": {"type": "boolean", "deprecated": True},
            "maybe": {"type": ["string", "null"]},
        },
        "required": ["q"],
        "additionalProperties": False,
    },
]
CANDIDATE_VALUES: list[object] = [0, 7, -3, 7.0, 7.5, 1e300, True, False, None, "", "7", [], {}, [1], {"a": 1}]


@pytest.mark.parametrize("schema", FLAT_SCHEMAS)
def test_the_quick_check_of_flat_schemas_agrees_with_the_full_validator(schema: dict[str, Any]) -> None:
    quick = _CompiledSchema(schema)
    full = _CompiledSchema(schema)
    assert quick.flat is not None
    full.flat = None  # jsonschema alone
    names = [*schema["properties"], "unknown"]
    cases: list[dict[str, Any]] = [{}]
    for name in names:
        for value in CANDIDATE_VALUES:
            cases.append({name: value})
            cases.append({names[0]: "x", name: value})
    for arguments in cases:
        assert argument_problems(quick, arguments) == argument_problems(full, arguments), arguments


@pytest.mark.parametrize(
    "schema",
    [
        pytest.param({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}, id="constraint"),
        pytest.param({"type": "object", "properties": {"s": {"type": "string", "format": "email"}}}, id="format"),
        pytest.param({"type": "object", "properties": {"a": {"type": "array"}}}, id="container"),
        pytest.param({"type": "object", "properties": {"x": {}}}, id="any-value"),
        pytest.param({"type": "object", "properties": {}, "additionalProperties": True}, id="open"),
        pytest.param({"type": "object", "properties": {"r": {"$ref": "#/$defs/R"}}, "$defs": {"R": {}}}, id="ref"),
    ],
)
def test_schemas_with_anything_but_scalar_types_get_no_quick_check(schema: dict[str, Any]) -> None:
    assert _CompiledSchema(schema).flat is None
