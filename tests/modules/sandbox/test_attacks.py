"""The sandbox attack set (THREATS G1-G3), run through the policy chain against real workers.

Every attack must be stopped, leave the server (this process) up, and be recorded in the audit
log; a benign module keeps working in the same run. Each case runs in every tier the host offers.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from modules.sandbox import ModuleLoadFailed, start_worker
from tests.modules.sandbox.support import TIERS, AuditSink, module_tool, report_for, spec_for
from tests.server.audit.support import call as pipeline_call
from tests.server.audit.support import make_runtime, records, text_of
from tools.errors import ToolFailure
from tools.model import ToolResult

pytestmark = pytest.mark.anyio

CANARY = "canary-7f3e9d1c-never-leaves"
STOPPED = {"sandbox_violation"}
# A path the sandbox does not mount is simply absent (full tier); Landlock denies it otherwise.
STOPPED_OR_ABSENT = {"sandbox_violation", "tool_error"}


@dataclass
class Host:
    """What the attacks aim at: the server's secrets, its process, and live listeners."""

    data_dir: Path
    key_file: Path
    other_module_file: Path
    outside_file: Path
    tcp: socket.socket
    udp: socket.socket
    unix_name: str
    unix: socket.socket

    @property
    def pid(self) -> int:
        return os.getpid()


@pytest.fixture
def host(tmp_path: Path) -> Any:
    data_dir = tmp_path / "data"
    other = data_dir / "modules" / "other" / "1.0.0"
    other.mkdir(parents=True)
    (other / "state.json").write_text(CANARY)
    (data_dir / "audit.key").write_bytes(b"")  # replaced by the ledger; chmod keeps it private
    outside = tmp_path / "outside.txt"
    outside.write_text(CANARY)
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    unix_name = f"toolkiln-test-{os.getpid()}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + unix_name)
    unix.listen()
    unix.setblocking(False)
    tcp.setblocking(False)
    (data_dir / "audit.key").unlink()
    yield Host(data_dir, data_dir / "audit.key", other / "state.json", outside, tcp, udp, unix_name, unix)
    for sock in (tcp, udp, unix):
        sock.close()


@dataclass
class Sandboxed:
    runtime: Any
    sink: AuditSink
    host: Host


@pytest.fixture(params=TIERS)
async def sandboxed(request: pytest.FixtureRequest, host: Host) -> AsyncIterator[Sandboxed]:
    report = report_for(request.param)
    runtime = make_runtime(host.data_dir, [])
    sink = AuditSink(runtime)
    workers = []
    try:
        attacks = await start_worker(spec_for("attacks"), on_event=sink, report=report)
        workers.append(attacks)
        benign = await start_worker(spec_for("benign"), on_event=sink, report=report)
        workers.append(benign)
        tools = [module_tool(attacks, spec, timeout_s=1.5) for spec in await attacks.tools()]
        tools += [module_tool(benign, spec) for spec in await benign.tools()]
        runtime.registry.replace_source("modules", tools)
        # The ledger (and its key file) exists before any attack runs.
        assert text_of(await call(runtime, "benign.add", {"a": 1, "b": 2})) == '{"sum": 3}'
        assert host.key_file.exists()
        yield Sandboxed(runtime, sink, host)
    finally:
        for worker in workers:
            await worker.stop()
        runtime.ledger.close()


async def call(runtime: Any, name: str, arguments: dict[str, Any]) -> ToolResult:
    """Through the whole policy chain; a tool failure becomes the `isError` result a client sees."""
    try:
        outcome = await pipeline_call(runtime, name, arguments)
    except ToolFailure as failure:
        return ToolResult.text(failure.message, is_error=True)
    assert isinstance(outcome, ToolResult)
    return outcome


Args = Callable[[Host], dict[str, Any]]

ATTACKS = [
    pytest.param("read_file", lambda h: {"path": str(h.outside_file)}, STOPPED_OR_ABSENT, id="read-file-outside-dir"),
    pytest.param("read_file", lambda h: {"path": str(h.key_file)}, STOPPED_OR_ABSENT, id="read-audit-key-file"),
    pytest.param("read_file", lambda h: {"path": str(h.other_module_file)}, STOPPED_OR_ABSENT, id="read-other-module"),
    pytest.param("read_file", lambda h: {"path": "/etc/shadow"}, STOPPED_OR_ABSENT, id="read-etc-shadow"),
    pytest.param(
        "read_file", lambda h: {"path": f"/proc/{h.pid}/environ"}, STOPPED_OR_ABSENT, id="read-server-environ"
    ),
    pytest.param("read_file", lambda h: {"path": f"/proc/{h.pid}/mem"}, STOPPED_OR_ABSENT, id="read-server-mem"),
    pytest.param("read_file", lambda h: {"path": "/proc/self/environ"}, STOPPED_OR_ABSENT, id="read-own-environ"),
    pytest.param("tcp", lambda h: {"port": h.tcp.getsockname()[1]}, STOPPED, id="open-tcp-socket"),
    pytest.param("udp", lambda h: {"port": h.udp.getsockname()[1]}, STOPPED, id="open-udp-socket"),
    pytest.param("abstract_unix", lambda h: {"name": h.unix_name}, STOPPED, id="open-abstract-unix-socket"),
    pytest.param("fork_bomb", lambda h: {}, STOPPED, id="fork-bomb"),
    pytest.param("allocate", lambda h: {"gigabytes": 4}, STOPPED, id="allocate-4-gb"),
    pytest.param("spin", lambda h: {}, {"timeout"}, id="spin-forever"),
    pytest.param("write_file", lambda h: {"path": str(h.outside_file)}, STOPPED_OR_ABSENT, id="write-outside-dir"),
    pytest.param("write_file", lambda h: {"path": "adapter.py"}, STOPPED, id="overwrite-own-code"),
    pytest.param("fill_disk", lambda h: {}, STOPPED, id="fill-the-disk"),
    pytest.param("open_files", lambda h: {}, STOPPED, id="exhaust-file-descriptors"),
    pytest.param("exec_shell", lambda h: {}, STOPPED, id="exec-a-shell"),
    pytest.param("system_shell", lambda h: {}, STOPPED, id="os-system-a-shell"),
    pytest.param("load_ctypes", lambda h: {}, STOPPED, id="import-ctypes"),
    pytest.param("raw_syscall", lambda h: {}, STOPPED, id="ctypes-around-the-import-hook"),
    pytest.param("signal_process", lambda h: {"pid": h.pid}, STOPPED, id="signal-the-server"),
    pytest.param("huge_result", lambda h: {"megabytes": 100}, STOPPED, id="return-100-mb"),
    pytest.param("forge_frame", lambda h: {}, STOPPED, id="forge-an-oversized-frame"),
]


@pytest.mark.parametrize(("tool", "arguments", "statuses"), ATTACKS)
async def test_attack_is_stopped_audited_and_the_server_keeps_serving(
    sandboxed: Sandboxed, tool: str, arguments: Args, statuses: set[str]
) -> None:
    runtime, host = sandboxed.runtime, sandboxed.host
    before = host.outside_file.read_text()

    outcome = await call(runtime, f"attacks.{tool}", arguments(host))

    assert isinstance(outcome, ToolResult)
    assert outcome.is_error, text_of(outcome)
    assert CANARY not in text_of(outcome)
    audit_key = host.key_file.read_bytes()
    assert audit_key.hex() not in text_of(outcome)
    outcomes = [r for r in records(host.data_dir / "audit.db") if r["kind"] == "outcome"]
    assert outcomes[-1]["tool"] == f"attacks.{tool}"
    assert outcomes[-1]["status"] in statuses, outcomes[-1]
    if outcomes[-1]["status"] != "tool_error":
        assert sandboxed.sink.events[-1].kind in ("violation", "timeout")
    # Nothing reached the host: no file changed, no connection or datagram arrived.
    assert host.outside_file.read_text() == before
    for listener in (host.tcp, host.unix):
        with pytest.raises(BlockingIOError):
            listener.accept()
    with pytest.raises(BlockingIOError):
        host.udp.recv(16)
    # The server is up and a benign module still answers; the attacker's worker restarts.
    assert text_of(await call(runtime, "benign.add", {"a": 2, "b": 40})) == '{"sum": 42}'
    assert "hostile module" in text_of(await call(runtime, "attacks.read_file", {"path": "adapter.py"}))


async def test_printing_megabytes_keeps_a_bounded_log_and_the_call_succeeds(sandboxed: Sandboxed) -> None:
    with structlog.testing.capture_logs() as logs:
        outcome = await call(sandboxed.runtime, "attacks.shout", {"megabytes": 8})

    assert text_of(outcome) == "done"
    printed = sum(len(entry.get("text", "")) for entry in logs if entry["event"] == "module_output")
    assert 0 < printed <= 64 * 1024


async def test_a_module_raising_at_import_fails_to_load_cleanly_and_is_audited(sandboxed: Sandboxed) -> None:
    report = report_for("full" if sandboxed.sink.events[0].reason == "full" else "fallback")

    with pytest.raises(ModuleLoadFailed, match=r"RuntimeError: import-time side effect refused at adapter.py:3"):
        await start_worker(spec_for("raise_at_import"), on_event=sandboxed.sink, report=report)

    events = [r for r in records(sandboxed.host.data_dir / "audit.db") if r["kind"] == "event"]
    assert events[-1]["status"] == "load_failed"
    assert "import-time side effect" in events[-1]["detail"]
    assert text_of(await call(sandboxed.runtime, "benign.add", {"a": 1, "b": 1})) == '{"sum": 2}'


async def test_a_module_exiting_during_a_call_is_a_tool_failure_and_the_worker_restarts(sandboxed: Sandboxed) -> None:
    outcome = await call(sandboxed.runtime, "attacks.leave", {})

    assert isinstance(outcome, ToolResult)
    assert outcome.is_error
    assert "SystemExit" in text_of(outcome)
    assert "hostile module" in text_of(await call(sandboxed.runtime, "attacks.read_file", {"path": "adapter.py"}))
