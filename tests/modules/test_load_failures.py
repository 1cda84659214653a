"""Broken and hostile modules fail validation precisely, and a load that fails leaves nothing behind.

THREATS G4 (import-time side effects, SyntaxError, SystemExit or BaseException at import) and G5
(a colliding name, a definition that changed after approval). Run against the real sandboxed
worker inside a real runtime (storage, audit log, tool registry); no HTTP needed here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from modules.approval import Pins, hash_files, hash_tools
from modules.manifest import ModuleManifest, ModuleRef, load_manifest
from modules.source import ModuleSource, install_modules
from server.config import ModulesSettings, ServerSettings, Settings
from server.runtime import Runtime
from tests.modules.support import place_module, weather_upstream
from tools.errors import ToolFailure
from tools.model import CallContext, Principal

pytestmark = pytest.mark.anyio

ADMIN = CallContext(principal=Principal("tester", roles=("admin",)))


@asynccontextmanager
async def running(data_dir: Path, **modules: int) -> AsyncIterator[tuple[Runtime, ModuleSource]]:
    settings = Settings(
        server=ServerSettings(data_dir=data_dir), modules=ModulesSettings(poll_interval_s=3600, **modules)
    )
    runtime = Runtime(settings)
    source = install_modules(runtime)
    async with runtime.running():
        yield runtime, source


async def serve(source: ModuleSource, ref: ModuleRef) -> None:
    """validate → approve → activate, as an operator would, then apply it."""
    report = await source.lifecycle.validate(ref, actor="tester")
    assert report["passed"], report["problems"]
    await source.lifecycle.approve(ref, actor="tester")
    await source.lifecycle.activate(ref, actor="tester")
    await source.sync()


async def force_approve(source: ModuleSource, data_dir: Path, ref: ModuleRef) -> None:
    """Approve exactly what is on disk without validating: the loader must stand on its own."""
    directory = data_dir / "modules" / ref.name / ref.version
    manifest = load_manifest(directory, expect=ref)
    pins = Pins(files=hash_files(directory), tools=hash_tools(t.definition() for t in manifest.tools))
    await source.lifecycle.record(ref)
    await source.lifecycle.registry.update(
        ref, event="approved", actor="tester", state="approved", pins=pins, manifest=manifest.model_dump(mode="json")
    )


def write_syntax_error(data_dir: Path) -> None:
    directory = data_dir / "modules" / "syntax_error" / "1.0.0"
    (directory / "tests").mkdir(parents=True)
    (directory / "manifest.toml").write_text(
        'name = "syntax_error"\nversion = "1.0.0"\ndescription = "does not parse"\nentry = "module.py"\n'
        '[[tools]]\nname = "syntax_error_tool"\ndescription = "never"\ninput_schema = { type = "object" }\n'
    )
    (directory / "module.py").write_text("from toolkiln_module import tool\n\n\ndef broken(:\n    return 1\n")
    (directory / "tests" / "test_module.py").write_text("def test_nothing():\n    pass\n")


@pytest.mark.parametrize(
    ("name", "stage", "where", "what"),
    [
        pytest.param("syntax_error", "lint", "module.py:4:", "SyntaxError", id="syntax-error"),
        pytest.param("exit_at_import", "import", "module.py", "SystemExit: 3 at module.py:12", id="system-exit"),
        pytest.param("raise_at_import", "import", "module.py", "BaseException: refusing to load", id="base-exception"),
        pytest.param("drifts", "tools", "drifts_tool", "description in the code differs", id="definition-drift"),
    ],
)
async def test_broken_module_fails_validation_naming_stage_place_and_cause(
    tmp_path: Path, name: str, stage: str, where: str, what: str
) -> None:
    if name == "syntax_error":
        write_syntax_error(tmp_path)
    else:
        place_module(tmp_path, name, "1.0.0")
    async with running(tmp_path) as (runtime, source):
        report = await source.lifecycle.validate(ModuleRef(name, "1.0.0"), actor="tester")
        record = await source.lifecycle.record(ModuleRef(name, "1.0.0"))
        names = {tool.name for tool in runtime.registry.tools()}
    assert report["passed"] is False
    assert record.state == "draft"
    [found] = [p for p in report["problems"] if p["stage"] == stage]
    assert found["where"].startswith(where)
    assert what in found["what"]
    assert found["fix"]
    assert not any(tool.startswith(name) for tool in names)


async def test_a_name_another_source_serves_is_a_collision_at_validation(tmp_path: Path) -> None:
    place_module(tmp_path, "weather", "1.0.0")
    place_module(tmp_path, "collides", "1.0.0")
    async with running(tmp_path) as (_, source):
        await serve(source, ModuleRef("weather", "1.0.0"))
        report = await source.lifecycle.validate(ModuleRef("collides", "1.0.0"), actor="tester")
    [collision] = [p for p in report["problems"] if p["stage"] == "collision"]
    assert collision["where"] == "weather_now"
    assert "module:weather" in collision["what"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param("exit_at_import", "SystemExit", id="system-exit-at-import"),
        pytest.param("raise_at_import", "BaseException", id="base-exception-at-import"),
        pytest.param("drifts", "tool definitions differ from the approval", id="definition-changed-after-approval"),
        pytest.param("collides", "collides", id="name-collision"),
    ],
)
async def test_a_version_that_fails_to_load_is_disabled_and_the_previous_keeps_serving(
    tmp_path: Path, name: str, why: str
) -> None:
    with weather_upstream() as origin:
        await _load_broken_next_to_weather(tmp_path, name, why, origin)


async def _load_broken_next_to_weather(tmp_path: Path, name: str, why: str, origin: str) -> None:
    place_module(tmp_path, "weather", "1.0.0", origin=origin)
    if name == "collides":
        broken = ModuleRef("collides", "1.0.0")
        place_module(tmp_path, "collides", "1.0.0")
    else:
        # The broken code arrives as the next version of the module that is serving.
        broken = ModuleRef("weather", "2.0.0")
        target = place_module(tmp_path, name, "1.0.0")
        renamed = tmp_path / "modules" / "weather" / "2.0.0"
        target.rename(renamed)
        manifest = (renamed / "manifest.toml").read_text()
        (renamed / "manifest.toml").write_text(manifest.replace(f'name = "{name}"', 'name = "weather"').replace(
            'version = "1.0.0"', 'version = "2.0.0"'))  # fmt: skip
    async with running(tmp_path) as (runtime, source):
        await serve(source, ModuleRef("weather", "1.0.0"))
        before = runtime.registry.get("weather_now")
        await force_approve(source, tmp_path, broken)
        await source.lifecycle.activate(broken, actor="tester")
        await source.sync()

        record = await source.lifecycle.record(broken)
        serving = source.serving()
        weather = runtime.registry.get("weather_now")
        sources = runtime.registry.sources()
        assert weather is not None
        result = await weather.executor({"city": "Oslo"}, ADMIN)
    assert record.state == "disabled"
    assert why in (record.reason or "")
    assert serving["weather"] == "1.0.0"
    assert weather is before
    assert result.structured is not None
    assert result.structured["module_version"] == "1.0.0"
    assert "module:collides" not in sources
    assert not any(
        name.startswith(("exit_at", "raise_at", "drifts", "collides")) for name in sources.get("module:weather", ())
    )
    statuses = {row[0] for row in _audit(tmp_path)}
    assert {"load_failed", "tampered"} & statuses
    # The version it was to replace is recorded as serving on (a collision replaced nothing).
    assert ("kept_serving" in statuses) is (broken.name == "weather")


def _audit(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "audit.db") as db:
        return [
            (str(r[0]), str(r[1])) for r in db.execute("SELECT status, tool FROM audit_records WHERE kind = 'event'")
        ]


async def test_repeated_failures_auto_disable_the_module_at_the_threshold(tmp_path: Path) -> None:
    place_module(tmp_path, "failing", "1.0.0")
    async with running(tmp_path, failure_threshold=3) as (runtime, source):
        await serve(source, ModuleRef("failing", "1.0.0"))
        tool = runtime.registry.get("failing_tool")
        assert tool is not None
        for _ in range(3):
            with pytest.raises(ToolFailure, match="upstream exploded"):
                await tool.executor({}, ADMIN)
        assert source.loader is not None
        await source.loader.settle()
        record = await source.lifecycle.record(ModuleRef("failing", "1.0.0"))
        gone = runtime.registry.get("failing_tool")
    assert record.state == "disabled"
    assert "auto-disabled after 3 failed call(s)" in (record.reason or "")
    assert gone is None


async def test_at_start_up_intact_active_modules_load_and_changed_ones_are_disabled(tmp_path: Path) -> None:
    place_module(tmp_path, "weather", "1.0.0")
    place_module(tmp_path, "failing", "1.0.0")
    async with running(tmp_path) as (_, source):
        await serve(source, ModuleRef("weather", "1.0.0"))
        await serve(source, ModuleRef("failing", "1.0.0"))
    code = tmp_path / "modules" / "failing" / "1.0.0" / "module.py"
    code.write_text(code.read_text().replace("exploded", "exploded!"))
    place_module(tmp_path, "drifts", "1.0.0")
    async with running(tmp_path) as (runtime, source):
        serving = source.serving()
        failing = await source.lifecycle.record(ModuleRef("failing", "1.0.0"))
        drafts = await source.lifecycle.record(ModuleRef("drifts", "1.0.0"))
        names = {tool.name for tool in runtime.registry.tools()}
    assert serving == {"weather": "1.0.0"}
    assert "weather_now" in names
    assert "failing_tool" not in names
    assert failing.state == "disabled"
    assert "file changed: module.py" in (failing.reason or "")
    assert drafts.state == "draft"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'name = "Bad Name"\nversion = "1"\ndescription = ""\nsurprise = 1\ntools = []\n',
            ["name:", "version:", "description:", "surprise: unknown key", "tools:"],
            id="every-top-level-problem-at-once",
        ),
        pytest.param(
            'name = "m"\nversion = "1.0.0"\ndescription = "d"\negress = ["http://h", "ftp://h:21", "https://h:443/x"]\n'
            '[[tools]]\nname = "t"\ndescription = "d"\ninput_schema = { type = "string" }\n',
            ["egress: egress entry 'http://h'", "'ftp://h:21'", "'https://h:443/x'", "input_schema: must be"],
            id="egress-and-schema",
        ),
        pytest.param(
            'name = "m"\nversion = "1.0.0"\ndescription = "d"\nentry = "../escape.py"\n'
            '[[tools]]\nname = "t"\ndescription = "d"\ninput_schema = { type = "object" }\n'
            '[[tools]]\nname = "t"\ndescription = "d"\ninput_schema = { type = "object" }\n'
            '[limits]\nmemory_mb = "lots"\n',
            ["entry: entry must be a relative path", "limits.memory_mb:"],
            id="path-escape-and-bad-limit",
        ),
    ],
)
def test_a_bad_manifest_is_rejected_with_every_problem_named(tmp_path: Path, text: str, expected: list[str]) -> None:
    from modules.manifest import ManifestInvalid

    (tmp_path / "manifest.toml").write_text(text)
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(tmp_path)
    joined = "\n".join(caught.value.problems)
    for part in expected:
        assert part in joined, joined


def test_a_good_manifest_round_trips_through_the_registry_form() -> None:
    manifest = load_manifest(Path(__file__).parent / "fixtures" / "weather" / "1.0.0")
    assert ModuleManifest.stored(manifest.model_dump(mode="json")) == manifest
    assert manifest.source == "module:weather"
