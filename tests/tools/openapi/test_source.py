"""The OpenAPI source in a running server: `serve --spec`, reload on change, `toolkiln reload`.

Real servers over stdio (the SDK `Client` launching `python -m server serve`), real files on disk.
Waits are events with a deadline: the client's list-changed notification, or the reloader's
round-done event in process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.subscriptions import ToolsListChanged
from structlog.testing import capture_logs

from tests.support.servers import serve_http
from tools.openapi.install import install_openapi
from tools.openapi.reload import Reloader, signal_servers
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.source import OpenApiSource
from tools.registry import ToolRegistry

DEADLINE_S = 15
ROOT = Path(__file__).resolve().parents[3]


def _doc(*operation_ids: str) -> dict[str, Any]:
    paths = {
        f"/{op_id}": {
            "get": {
                "operationId": op_id,
                "summary": f"The {op_id} operation",
                "responses": {"200": {"description": "ok"}},
            }
        }
        for op_id in operation_ids
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": paths,
    }


def _write(path: Path, doc: dict[str, Any] | str) -> Path:
    # Written beside and renamed, as editors and deploy tools do, so a reader never sees half a file.
    temp = path.with_suffix(".tmp")
    temp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(temp, path)
    return path


def _toolkiln(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `toolkiln ARGS…` with this interpreter and the test environment, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args], capture_output=True, text=True, env=_env(), timeout=30, check=False
    )


def _env() -> dict[str, str]:
    return {**os.environ, "TOOLKILN_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}


class _Watcher:
    def __init__(self) -> None:
        self.arrived = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.arrived.set()


async def _names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


@pytest.mark.anyio
async def test_serve_spec_needs_no_config_and_a_changed_file_reaches_a_connected_client(tmp_path: Path) -> None:
    """`serve --spec FILE`: the client sees the tools; editing the file sends list-changed."""
    spec = _write(tmp_path / "petstore.json", _doc("listPets"))
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "server", "serve", "--spec", str(spec)], cwd=tmp_path, env=_env()
    )
    watcher = _Watcher()
    async with Client(params, mode="legacy", message_handler=watcher) as client:
        listed = (await client.list_tools()).tools
        assert [tool.name for tool in listed] == ["listPets"]
        assert listed[0].annotations is not None
        assert listed[0].annotations.read_only_hint is True

        _write(spec, _doc("listPets", "showPet"))

        with anyio.fail_after(DEADLINE_S):
            await watcher.arrived.wait()
        assert await _names(client) == {"listPets", "showPet"}


@pytest.mark.anyio
async def test_toolkiln_reload_rebuilds_a_running_server_and_notifies_a_2026_listener(tmp_path: Path) -> None:
    """`toolkiln reload` signals the server with the same data directory; it rebuilds (no file watch)."""
    _write(tmp_path / "api.json", _doc("first"))
    config = tmp_path / "toolkiln.toml"
    config.write_text('[server]\ndata_dir = "state"\n\n[[sources]]\nspec = "api.json"\nwatch = false\n')
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "server", "serve", "--config", str(config)], cwd=ROOT, env=_env()
    )
    async with Client(params) as client:
        assert client.protocol_version == "2026-07-28"
        assert await _names(client) == {"first"}
        async with client.listen(tools_list_changed=True) as subscription:
            _write(tmp_path / "api.json", _doc("first", "second"))
            done = _toolkiln("reload", "--config", str(config))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "reload requested: 1 server(s)" in done.stdout
            with anyio.fail_after(DEADLINE_S):
                event = await subscription.__anext__()
            assert isinstance(event, ToolsListChanged)
        assert await _names(client) == {"first", "second"}


def test_toolkiln_reload_without_a_running_server_says_so(tmp_path: Path) -> None:
    config = tmp_path / "toolkiln.toml"
    config.write_text('[server]\ndata_dir = "state"\n')
    (tmp_path / "state" / "run").mkdir(parents=True)
    (tmp_path / "state" / "run" / "serve-999999999.pid").write_text("999999999\n")
    done = _toolkiln("reload", "--config", str(config))
    assert done.returncode == 1
    assert "no running toolkiln server" in done.stdout
    assert not (tmp_path / "state" / "run" / "serve-999999999.pid").exists()


def test_a_spec_that_fails_to_reload_keeps_the_last_good_tools_and_logs_why(tmp_path: Path) -> None:
    spec = _write(tmp_path / "api.json", _doc("alpha", "beta"))
    registry = ToolRegistry()
    source = OpenApiSource(OpenApiSourceSettings(spec=str(spec)), registry)
    source.load()
    version = registry.version
    _write(spec, '{"openapi": "3.0.3", "paths": ')
    with capture_logs() as logs:
        assert source.reload() is False
    assert registry.version == version
    assert registry.sources() == {"api": ("alpha", "beta")}
    (failure,) = [e for e in logs if e["event"] == "openapi_reload_failed"]
    assert "not valid JSON" in failure["error"]
    assert failure["kept_tools"] == 2
    assert source.last_error is not None


def test_a_watched_file_is_rebuilt_once_per_change_and_a_touch_is_not_a_change(tmp_path: Path) -> None:
    spec = _write(tmp_path / "api.json", _doc("alpha"))
    registry = ToolRegistry()
    installed = install_openapi([(OpenApiSourceSettings(spec=str(spec)), None)], registry)
    (source,) = installed.sources
    reloader = Reloader(installed.sources, poll_interval_s=0.02)
    versions: list[int] = []
    registry.subscribe(versions.append)
    reloader.start()
    try:
        os.utime(spec)
        assert not source.changed_on_disk()
        reloader.round_done.clear()
        _write(spec, _doc("alpha", "gamma"))
        assert reloader.round_done.wait(DEADLINE_S)
        assert registry.sources() == {"api": ("alpha", "gamma")}
        assert len(versions) == 1
    finally:
        reloader.stop()


def test_a_broken_source_does_not_stop_the_others(tmp_path: Path) -> None:
    """THREATS O1: one malformed spec is logged and skipped; the other source serves its tools."""
    good = _write(tmp_path / "good.json", _doc("ok"))
    bad = _write(tmp_path / "bad.json", '{"swagger": "2.0", "paths": []}')
    registry = ToolRegistry()
    with capture_logs() as logs:
        installed = install_openapi(
            [(OpenApiSourceSettings(spec=str(bad)), None), (OpenApiSourceSettings(spec=str(good)), None)], registry
        )
    assert registry.sources() == {"good": ("ok",)}
    (failure,) = [e for e in logs if e["event"] == "openapi_source_failed"]
    assert failure["source"] == "bad"
    assert "'paths' must be an object" in failure["error"]
    assert installed.sources[0].last_error is not None


def test_two_specs_with_the_same_file_name_become_two_sources(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _write(tmp_path / "a" / "api.json", _doc("one"))
    second = _write(tmp_path / "b" / "api.json", _doc("two"))
    registry = ToolRegistry()
    install_openapi(
        [(OpenApiSourceSettings(spec=str(first)), None), (OpenApiSourceSettings(spec=str(second)), None)], registry
    )
    assert registry.sources() == {"api": ("one",), "api-2": ("two",)}


def test_serve_over_http_with_two_specs_and_a_loopback_base_url(tmp_path: Path) -> None:
    """`--spec A --base-url URL --spec B`: each base URL applies to the spec before it."""
    first = _write(tmp_path / "first.json", _doc("one"))
    second = _write(tmp_path / "second.json", _doc("two"))
    with serve_http(
        "--spec", str(first), "--base-url", "http://127.0.0.1:9", "--spec", str(second), cwd=tmp_path
    ) as server:
        loaded = [e for e in server.log_events() if e.get("event") == "openapi_source_loaded"]
        assert {(e["source"], e["base_url"]) for e in loaded} == {
            ("first", "http://127.0.0.1:9"),
            ("second", "https://api.example.com"),
        }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--base-url", "http://127.0.0.1:9"], "must follow the --spec", id="base-url-first"),
        pytest.param(["--spec", "a.json", "--base-url", "ftp://x"], "absolute http(s) URL", id="bad-scheme"),
    ],
)
def test_spec_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_inspect_prints_every_operation_and_json_has_the_report_fields(tmp_path: Path) -> None:
    doc = _doc("listPets")
    doc["paths"]["/broken"] = {"get": {"operationId": "broken", "parameters": [{"in": "query"}], "responses": {}}}
    spec = _write(tmp_path / "api.json", doc)
    text = subprocess.run(
        [sys.executable, "-m", "server", "inspect", str(spec)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=True,
    ).stdout
    assert "2 operations: 1 converted, 1 skipped" in text
    assert "converted  GET /listPets  → listPets" in text
    assert "skipped    GET /broken    parameter #1 has no name" in text
    raw = subprocess.run(
        [sys.executable, "-m", "server", "inspect", str(spec), "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=True,
    ).stdout
    report = json.loads(raw)
    assert [(op["operation"], op["status"], op["tool"]) for op in report["operations"]] == [
        ("GET /listPets", "converted", "listPets"),
        ("GET /broken", "skipped", None),
    ]
    for op in report["operations"]:
        assert {"operation", "status", "tool", "reason", "schema_bytes"} <= set(op)
    assert report["operations"][0]["schema_bytes"] > 0


def test_inspect_of_a_malformed_spec_exits_2_with_the_reason(tmp_path: Path) -> None:
    spec = _write(tmp_path / "api.yaml", "openapi: 3.1\npaths: {}\n")
    done = _toolkiln("inspect", str(spec))
    assert done.returncode == 2
    assert "'openapi' must be a version string" in done.stderr
    assert done.stdout == ""


def test_a_converted_spec_is_cached_and_a_changed_spec_or_setting_misses(tmp_path: Path) -> None:
    """The cache returns exactly the tools a fresh conversion gives; a corrupt entry is rebuilt."""
    spec = _write(tmp_path / "api.json", _doc("alpha", "beta"))
    cache_dir = tmp_path / "cache"
    settings = OpenApiSourceSettings(spec=str(spec))
    fresh = OpenApiSource(settings, ToolRegistry(), cache_dir=cache_dir)
    fresh.load()
    fresh.flush_cache()
    (entry,) = cache_dir.glob("api-*.json")

    registry = ToolRegistry()
    cached = OpenApiSource(settings, registry, cache_dir=cache_dir)
    with capture_logs() as logs:
        cached.load()
    assert any(e["event"] == "openapi_cache_hit" for e in logs)
    assert registry.sources() == {"api": ("alpha", "beta")}
    uncached = ToolRegistry()
    OpenApiSource(settings, uncached).load()
    assert [(t.name, t.input_schema, t.description) for t in registry.tools()] == [
        (t.name, t.input_schema, t.description) for t in uncached.tools()
    ]

    prefixed = OpenApiSource(settings.model_copy(update={"prefix": "p_"}), ToolRegistry(), cache_dir=cache_dir)
    with capture_logs() as logs:
        prefixed.load()
    assert not any(e["event"] == "openapi_cache_hit" for e in logs)

    entry.write_text("{not json")
    with capture_logs() as logs:
        again = ToolRegistry()
        OpenApiSource(settings, again, cache_dir=cache_dir).load()
    assert again.sources() == {"api": ("alpha", "beta")}
    assert any(e["event"] == "openapi_cache_unreadable" for e in logs)


def test_reload_never_signals_a_live_process_that_is_not_a_toolkiln_server(tmp_path: Path) -> None:
    """A pid file whose pid now belongs to another program is dropped, never signalled."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        stale = run_dir / f"serve-{sleeper.pid}.pid"
        stale.write_text(f"{sleeper.pid}\n")
        signalled, removed = signal_servers(run_dir)
        assert signalled == []
        assert removed == [stale]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
