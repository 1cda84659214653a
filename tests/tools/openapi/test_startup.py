"""Cold start of `toolkiln serve` with a large spec: memory and list-size targets, what is (not)
imported before the first tools/list, the collector paused during start-up, and the wire form of
tools/list built without `mcp_types` models.

The time targets (GitHub's spec < 1.5 s, Stripe's < 3 s from process start to the first
tools/list) are measured by benchmarks/bench_openapi_cold_start.py; here the server's CPU time
only guards against gross regressions, since wall time on a shared machine says little.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from server.app import _ToolView, build_server
from server.cli import main
from server.config import Settings
from server.runtime import Runtime
from server.sources import install_sources
from server.startup import end_startup, end_startup_by, pause_collector
from server.wire import to_mcp_annotations
from tools.model import Tool
from tools.openapi.build import build_spec
from tools.openapi.loader import parse_spec_bytes
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.spec_errors import SpecInvalid

ROOT = Path(__file__).resolve().parents[3]
CORPUS = (ROOT / ".." / "shared" / "specs").resolve()
GITHUB = CORPUS / "github-api-3.0.json"
STRIPE = CORPUS / "stripe-2022-04-spec3-3.0.json"
TINY_JSON = {
    "openapi": "3.0.3",
    "info": {"title": "tiny", "version": "1"},
    "servers": [{"url": "https://api.example.com"}],
    "paths": {"/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "ok"}}}}},
}


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def _cold_server(spec: Path, workdir: Path, *python_flags: str) -> AsyncIterator[tuple[Client, int, Path]]:
    """`toolkiln serve --spec SPEC` over stdio in a fresh data dir; yields (client, server pid, stderr file)."""
    stderr = workdir / "server.stderr"
    params = StdioServerParameters(
        command=sys.executable,
        args=[*python_flags, "-m", "server", "serve", "--spec", str(spec), "--base-url", "https://api.example.com"],
        cwd=str(workdir),
        env={k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")} | {"TOOLKILN_LOG_LEVEL": "warning"},
    )
    before = _children()
    with stderr.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            (pid,) = _children() - before
            yield client, pid, stderr


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("spec", "peak_mib", "cpu_s"),
    [pytest.param(GITHUB, 200, 3.0, id="github-13MB"), pytest.param(STRIPE, 300, 6.0, id="stripe-spec3")],
)
async def test_a_cold_start_serves_the_first_list_within_the_memory_and_list_size_targets(
    spec: Path, peak_mib: int, cpu_s: float, tmp_path: Path
) -> None:
    async with _cold_server(spec, tmp_path) as (client, pid, _):
        listed = await client.list_tools()
        peak = _status(pid, "VmHWM") / 1024
        cpu = _cpu_seconds(pid)
    assert len(listed.tools) > 400
    assert peak < peak_mib, f"peak RSS {peak:.0f} MiB"
    wire = len(listed.model_dump_json(by_alias=True, exclude_none=True))
    assert wire < 10 * spec.stat().st_size
    assert cpu < cpu_s, f"{cpu:.2f} s of CPU to the first tools/list"


@pytest.mark.anyio
async def test_a_json_spec_reaches_its_first_list_without_yaml_or_an_llm_sdk_imported(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY_JSON), encoding="utf-8")
    async with _cold_server(spec, tmp_path, "-X", "importtime") as (client, _, stderr):
        listed = await client.list_tools()
        # -X importtime writes one unbuffered line per import, as it happens.
        imported = {line.split("|")[-1].strip() for line in stderr.read_text().splitlines() if "|" in line}
    assert "ping" in [tool.name for tool in listed.tools]
    assert "server.app" in imported
    assert not {"yaml", "anthropic", "openai"} & imported


def _reference_parse(data: bytes) -> Any:
    """What a JSON spec's bytes mean: the standard library's reading of them, constants refused."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(data, parse_constant=refuse)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"a": "b"}', id="ascii"),
        pytest.param('{"d": "café ✓"}'.encode(), id="bmp"),
        pytest.param('{"e": "😀 x", "f": ["𝕏"]}'.encode(), id="astral"),
        pytest.param('{"ключ": 1}'.encode(), id="non-ascii-key"),
        pytest.param(b'{"s": "\\ud83d' + "😀".encode() + b'"}', id="escaped-high-surrogate-then-emoji"),
        pytest.param(b'{"s": "\xed\xa0\x80"}', id="encoded-lone-surrogate"),
        pytest.param(b'{"s": "\\ud83d\xed\xb8\x80"}', id="escaped-high-then-encoded-low-surrogate"),
        pytest.param(b'{"s": "\xff"}', id="invalid-utf8"),
        pytest.param('{"a": é}'.encode(), id="non-ascii-outside-a-string"),
        pytest.param('{"a": "é",\n "b": NaN}'.encode(), id="nan-after-non-ascii"),
        pytest.param('{"a": "é"}'.encode("utf-16-le"), id="utf-16"),
        pytest.param(json.dumps({"text": "漢字" * 500}, ensure_ascii=False).encode(), id="mostly-non-ascii"),
    ],
)
def test_a_json_spec_parses_to_the_same_data_or_error_whatever_its_non_ascii_text(data: bytes) -> None:
    """Non-ASCII text is parsed as escapes (ASCII, so 1 byte per character); never a different
    value, and an error still names the line and column of the bytes as given."""
    failure: ValueError | None = None
    try:
        expected = _reference_parse(data)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
        failure = error
    if failure is None:
        parsed = parse_spec_bytes(data, "spec.json", max_yaml_nodes=1000)
        assert json.dumps(parsed, ensure_ascii=True) == json.dumps(expected, ensure_ascii=True)
        return
    with pytest.raises(SpecInvalid) as raised:
        parse_spec_bytes(data, "spec.json", max_yaml_nodes=1000)
    if isinstance(failure, json.JSONDecodeError):
        assert raised.value.where == f"line {failure.lineno}, column {failure.colno}"


@pytest.fixture
def collector_restored() -> Any:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_restored")
def test_start_up_pauses_the_collector_and_its_end_freezes_what_was_built() -> None:
    gc.enable()
    pause_collector()
    assert not gc.isenabled()
    end_startup(freeze=True)
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    end_startup()  # once only
    assert gc.isenabled()


@pytest.mark.anyio
@pytest.mark.usefixtures("collector_restored")
async def test_a_server_ends_start_up_once_its_first_tools_list_is_answered(tmp_path: Path) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    runtime = Runtime(settings)
    install_sources(runtime, specs=[OpenApiSourceSettings(spec=str(CORPUS / "oai-petstore-3.0.yaml"))])
    gc.enable()
    pause_collector()
    async with runtime.running(), Client(build_server(runtime)) as client:
        assert not gc.isenabled()  # connecting is still start-up
        listed = await client.list_tools()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert "listPets" in {tool.name for tool in listed.tools}


@pytest.mark.usefixtures("collector_restored")
def test_a_server_nobody_lists_ends_start_up_at_its_deadline() -> None:
    gc.enable()
    pause_collector()
    end_startup_by(0.01).join()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("collector_restored")
def test_a_program_that_runs_without_the_collector_keeps_it_off() -> None:
    gc.disable()
    pause_collector()
    end_startup(freeze=True)
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector_restored")
def test_a_command_returns_with_the_collector_running_even_when_it_exits(capsys: pytest.CaptureFixture[str]) -> None:
    gc.enable()
    with pytest.raises(SystemExit):
        main(["inspect", "--help"])
    assert gc.isenabled()
    capsys.readouterr()
    assert main(["inspect", str(CORPUS / "oai-petstore-3.0.yaml"), "--json"]) == 0
    assert gc.isenabled()
    assert json.loads(capsys.readouterr().out)["summary"]["converted"] == 3


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize(
    ("keeps", "running"), [pytest.param(False, True, id="demo"), pytest.param(True, False, id="serve")]
)
def test_only_commands_that_keep_the_pause_run_without_the_collector(
    keeps: bool, running: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-running command (`demo`, …) must not run for hours without the collector."""
    import server.commands

    seen: list[bool] = []

    def run(_: object) -> int:
        seen.append(gc.isenabled())
        return 0

    demo = next(c for c in server.commands.ALL_COMMANDS if c.name == "demo")
    patched = dataclasses.replace(demo, run=run, keeps_collector_paused=keeps)
    monkeypatch.setattr(
        server.commands, "ALL_COMMANDS", [patched if c is demo else c for c in server.commands.ALL_COMMANDS]
    )
    gc.enable()
    assert main(["demo"]) == 0
    assert seen == [running]
    assert gc.isenabled()


@pytest.mark.parametrize("spec", ["github-api-3.0.json", "oai-petstore-3.0.yaml", "openai-3.1.yaml"])
def test_the_list_wire_dict_is_exactly_what_the_sdk_tool_model_would_send(spec: str) -> None:
    drafts = build_spec(OpenApiSourceSettings(spec=str(CORPUS / spec), base_url="https://x.example.com")).conversion
    view = _ToolView()
    for draft in drafts.drafts:
        tool = Tool(
            name=draft.name,
            title=draft.title,
            description=draft.description,
            input_schema=draft.input_schema,
            output_schema=draft.output_schema,
            annotations=draft.annotations,
            source="spec",
            executor=None,  # type: ignore[arg-type]  # never called: only the wire form is built
        )
        model = types.Tool(
            name=tool.name,
            title=tool.title,
            description=tool.description,
            input_schema=tool.input_schema,
            output_schema=tool.output_schema,
            annotations=to_mcp_annotations(tool.annotations),
        )
        assert view(tool) == model.model_dump(by_alias=True, mode="json", exclude_none=True)
        assert view(tool) is view(tool)  # built once per tool object
