"""A module version's long-lived worker process, seen from the server.

`start_worker` spawns the worker in the strongest tier the host offers and waits until the module
has been imported and its tools enumerated. Calls are answered one at a time (the worker is a
single thread); while one runs, the worker may send HTTP requests, which go to the broker, and
log lines, which are capped and logged here. A worker that dies (the sandbox killed it, a limit
was hit, a call ran past its deadline) is started again on the next call; what happened is raised
to the caller as a `ToolFailure` and reported as a `SandboxEvent`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import itertools
import json
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp_types as types
import structlog

from modules.broker.types import EgressRefused, EgressRequest, HttpHandler
from modules.sandbox.errors import (
    ModuleLoadFailed,
    ModuleToolError,
    ResourceExceeded,
    SandboxUnavailable,
    SandboxViolation,
    WorkerCrashed,
)
from modules.sandbox.launch import SDK_DIR, Launch, Tier, fresh_uid, worker_command
from modules.sandbox.protocol import FrameRejected, encode, read_frame
from modules.sandbox.report import SandboxReport, sandbox_report
from modules.sandbox.spec import EventKind, SandboxEvent, TestCase, TestReport, ToolSpec, WorkerSpec
from tools.errors import ToolFailure, ToolTimeout
from tools.model import ToolResult

__all__ = ["EventSink", "Worker", "start_worker"]

log = structlog.get_logger("toolkiln.modules")

EventSink = Callable[[SandboxEvent], Awaitable[None] | None]

_STDERR_KEEP = 4096
_FRAME_HEADROOM = 256 * 1024  # an HTTP request frame carries a base64 body plus headers
_SIGNAL_REASONS: dict[int, tuple[str, bool]] = {  # signal → (reason, is a resource limit)
    signal.SIGSYS: ("forbidden system call", False),
    signal.SIGXCPU: ("cpu time limit", True),
    signal.SIGXFSZ: ("file size limit", True),
}


class _Death:
    """Why the current worker process ended, once it has."""

    def __init__(self, error: ToolFailure, kind: EventKind, reason: str) -> None:
        self.error = error
        self.kind = kind
        self.reason = reason


class Worker:
    """One running module version. Create with `start_worker`."""

    def __init__(self, spec: WorkerSpec, report: SandboxReport, broker: HttpHandler | None, on_event: EventSink | None):
        self.spec = spec
        self.tier = report.tier
        self._interpreter = report.interpreter or ""
        self._broker = broker
        self._on_event = on_event
        self.events: deque[SandboxEvent] = deque(maxlen=256)
        self.ready_ms: float = 0.0  # the latest start, spawn to ready
        self.starts = 0
        self.landlock_abi = 0
        self._tools: list[ToolSpec] = []
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._stderr = bytearray()
        self._rejected: str | None = None
        self._killed_for: str | None = None
        self._log_left = 0
        self._stopped = False

    # -- public surface ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def tools(self) -> list[ToolSpec]:
        """The tools the module's code declared, enumerated in the sandbox at start."""
        return list(self._tools)

    async def call(self, name: str, arguments: dict[str, Any], timeout_s: float | None = None) -> ToolResult:
        """Run one tool in the worker.

        Raises:
            ModuleToolError: the module's code raised.
            SandboxViolation, ResourceExceeded: the sandbox stopped the module.
            ToolTimeout: the call ran past `timeout_s` (or the spec's limit); the worker was killed.
            WorkerCrashed: the worker died otherwise.
            ModuleLoadFailed: the worker had died and could not be started again.
        """
        limit = self.spec.limits.call_timeout_s
        if timeout_s is not None:
            limit = min(timeout_s, limit)
        answer = await self._exchange({"op": "call", "tool": name, "arguments": arguments}, limit, tool=name)
        return await self._tool_result(name, answer)

    async def run_tests(self, timeout_s: float | None = None) -> TestReport:
        """Run the module's own tests in this worker (HTTP answered by the tests' own mocks)."""
        limit = timeout_s or self.spec.limits.call_timeout_s
        try:
            answer = await self._exchange({"op": "run_tests"}, limit, tool=None)
        except ToolFailure as exc:
            return TestReport(cases=(), error=exc.message)
        cases = tuple(
            TestCase(name=str(case.get("name")), passed=bool(case.get("passed")), message=str(case.get("message", "")))
            for case in answer.get("cases") or ()
            if isinstance(case, dict)
        )
        return TestReport(cases=cases, error=None if cases else "the module has no tests (tests/test_*.py)")

    async def stop(self) -> None:
        """Ask the worker to exit, and kill it if it does not promptly."""
        self._stopped = True
        async with self._lock:
            await self._shutdown(graceful=True)
        await self._emit("stopped", "stopped")

    # -- process life --------------------------------------------------------------------------

    async def _start(self) -> None:
        spec = self.spec
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        module_fd = os.open(spec.module_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        sdk_fd = os.open(SDK_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        tier: Tier = "full" if self.tier == "full" else "fallback"
        launch = Launch(tier, fresh_uid(), child.fileno(), module_fd, sdk_fd, self._interpreter)
        started = time.perf_counter()
        self._stderr.clear()
        self._rejected = self._killed_for = None
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *worker_command(spec, launch),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child.fileno(), module_fd, sdk_fd),
                env={},
                start_new_session=True,
            )
        finally:
            child.close()
            os.close(module_fd)
            os.close(sdk_fd)
        self.starts += 1
        reader, self._writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 16)
        first: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[0] = first
        self._spawn(self._read_loop(reader, self._proc))
        if self._proc.stderr is not None:
            self._spawn(self._drain_stderr(self._proc.stderr))
        try:
            message = await asyncio.wait_for(first, spec.limits.start_timeout_s)
        except TimeoutError:
            await self._kill("start timeout")
            raise ModuleLoadFailed(spec.label, f"not ready within {spec.limits.start_timeout_s:g} s") from None
        except ToolFailure as exc:
            raise ModuleLoadFailed(spec.label, self._startup_problem(exc.message)) from None
        if message.get("op") != "ready":
            await self._shutdown(graceful=False)
            raise ModuleLoadFailed(spec.label, str(message.get("error", "the worker did not start")))
        try:
            self._tools = [ToolSpec.from_wire(item) for item in message.get("tools") or ()]
        except (KeyError, TypeError, ValueError) as exc:
            await self._shutdown(graceful=False)
            raise ModuleLoadFailed(spec.label, f"malformed tool list: {exc}") from None
        self.landlock_abi = int(message.get("landlock_abi") or 0)
        self.ready_ms = (time.perf_counter() - started) * 1000

    def _startup_problem(self, fallback: str) -> str:
        text = self._stderr.decode("utf-8", "replace").strip()
        return f"{fallback}: {text[-1000:]}" if text else fallback

    async def _ensure_running(self) -> None:
        if self._stopped:
            raise WorkerCrashed(f"Module '{self.spec.label}' is stopped")
        if not self.alive:
            await self._shutdown(graceful=False)
            try:
                await self._start()
            except ModuleLoadFailed as exc:
                # Mid-call, a worker that cannot come back is a failed call, not a start-up error.
                await self._emit("load_failed", "restart failed", detail=exc.problem)
                raise WorkerCrashed(exc.message) from None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = _STDERR_KEEP - len(self._stderr)
            if room > 0:
                self._stderr += chunk[:room]

    async def _kill(self, why: str) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self._killed_for = why
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _shutdown(self, *, graceful: bool) -> None:
        proc, writer = self._proc, self._writer
        if proc is not None and proc.returncode is None and graceful and writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(encode({"op": "stop"}))
                await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
        await self._kill("stopped")
        if writer is not None:
            writer.close()
        self._writer = None

    def _death(self, proc: asyncio.subprocess.Process) -> _Death:
        label = self.spec.label
        if self._rejected is not None:
            return _Death(SandboxViolation(label, "malformed frame", self._rejected), "violation", "malformed frame")
        if self._killed_for is not None:
            return _Death(WorkerCrashed(f"Module '{label}' was {self._killed_for}"), "stopped", self._killed_for)
        code = proc.returncode or 0
        # Killed directly (fallback tier) shows as -SIG; bubblewrap reports a signalled child as 128+SIG.
        sig = -code if code < 0 else code - 128 if code > 128 else 0
        if sig in _SIGNAL_REASONS:
            reason, is_limit = _SIGNAL_REASONS[sig]
            error_type = ResourceExceeded if is_limit else SandboxViolation
            return _Death(error_type(label, reason), "violation", reason)
        if sig == signal.SIGKILL:
            return _Death(ResourceExceeded(label, "killed by a resource limit"), "violation", "killed")
        return _Death(WorkerCrashed(f"Module '{label}' worker exited (status {code})"), "crashed", f"exit {code}")

    async def _read_loop(self, reader: asyncio.StreamReader, proc: asyncio.subprocess.Process) -> None:
        max_frame = self.spec.limits.result_kb * 1024 + _FRAME_HEADROOM
        try:
            while (message := await read_frame(reader, max_frame)) is not None:
                self._dispatch(message)
        except FrameRejected as exc:
            self._rejected = exc.reason
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        except OSError:
            pass
        except asyncio.CancelledError:
            # The event loop is closing: a worker must not outlive the server's interest in it.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        await proc.wait()
        death = self._death(proc)
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(death.error)

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op in ("ready", "failed"):
            first = self._pending.pop(0, None)
            if first is not None and not first.done():
                first.set_result(message)
        elif op == "result":
            key = message.get("id")
            future = self._pending.pop(key, None) if isinstance(key, int) and key > 0 else None
            if future is not None and not future.done():
                future.set_result(message)
        elif op == "http":
            self._spawn(self._http(message))
        elif op == "log":
            self._log(message)

    def _log(self, message: dict[str, Any]) -> None:
        text = str(message.get("text", ""))[: max(self._log_left, 0)]
        self._log_left -= len(text)
        if text.strip():
            log.info("module_output", module=self.spec.label, stream=str(message.get("stream"))[:8], text=text)

    async def _http(self, message: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"op": "http_result", "id": message.get("id")}
        try:
            if self._broker is None:
                raise EgressRefused("origin", "this module has no egress")
            request = _egress_request(self.spec.label, message)
            response = await self._broker(request)
            answer.update(
                ok=True,
                status=response.status,
                headers=dict(response.headers),
                body=base64.b64encode(response.body).decode("ascii"),
            )
        except EgressRefused as refused:
            answer.update(ok=False, reason=refused.reason, error=refused.message)
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(encode(answer))
                await writer.drain()

    # -- one exchange --------------------------------------------------------------------------

    async def _exchange(self, message: dict[str, Any], timeout_s: float, *, tool: str | None) -> dict[str, Any]:
        async with self._lock:
            await self._ensure_running()
            request_id = next(self._ids)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            self._log_left = self.spec.limits.log_kb_per_call * 1024
            assert self._writer is not None
            try:
                self._writer.write(encode({**message, "id": request_id}))
                await self._writer.drain()
                return await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                await self._kill("killed at its deadline")
                await self._emit("timeout", "deadline", tool=tool, detail=f"{timeout_s:g} s")
                raise ToolTimeout(tool or "tests", timeout_s) from None
            except (ToolFailure, OSError) as exc:
                if self._proc is not None:
                    await self._proc.wait()
                death = self._death(self._proc) if self._proc is not None else None
                if death is None:
                    raise WorkerCrashed(f"Module '{self.spec.label}': {exc}") from None
                await self._emit(death.kind, death.reason, tool=tool)
                raise death.error from None
            except BaseException:
                # Cancelled mid-call (the pipeline's deadline): the worker's state is unknown.
                with anyio.CancelScope(shield=True):
                    await self._kill("killed at its deadline")
                    await self._emit("timeout", "deadline", tool=tool, detail="cancelled by the caller")
                raise
            finally:
                self._pending.pop(request_id, None)

    async def _tool_result(self, name: str, answer: dict[str, Any]) -> ToolResult:
        label = self.spec.label
        if answer.get("ok"):
            if "text" in answer:
                return ToolResult.text(str(answer["text"]))
            value = answer.get("json")
            text = json.dumps(value, ensure_ascii=False)
            structured = value if isinstance(value, dict) else None
            return ToolResult(content=[types.TextContent(type="text", text=text)], structured=structured)
        kind = str(answer.get("kind", "error"))
        detail = str(answer.get("message", ""))[:2000]
        if kind == "denied":
            await self._emit("violation", "access denied", tool=name, detail=detail)
            raise SandboxViolation(label, "access denied", detail)
        if kind.startswith("limit:"):
            reason = f"{kind[6:]} limit"
            await self._emit("violation", reason, tool=name, detail=detail)
            raise ResourceExceeded(label, reason, detail)
        await self._emit("tool_error", "tool raised", tool=name, detail=detail)
        raise ModuleToolError(f"Module tool '{name}' failed: {detail}")

    async def _emit(self, kind: EventKind, reason: str, *, tool: str | None = None, detail: str = "") -> None:
        event = SandboxEvent(module=self.spec.label, kind=kind, reason=reason, tool=tool, detail=detail[:500])
        self.events.append(event)
        if kind in ("violation", "timeout", "crashed", "load_failed"):
            log.warning("module_sandbox_event", module=event.module, kind=kind, reason=reason, tool=tool)
        if self._on_event is not None:
            outcome = self._on_event(event)
            if inspect.isawaitable(outcome):
                await outcome


def _egress_request(module: str, message: dict[str, Any]) -> EgressRequest:
    headers = message.get("headers") or {}
    body = message.get("body")
    timeout = message.get("timeout")
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise EgressRefused("invalid", "headers must map strings to strings")
    try:
        raw = None if body is None else base64.b64decode(str(body), validate=True)
    except ValueError as exc:
        raise EgressRefused("invalid", "the body is not base64") from exc
    return EgressRequest(
        module=module,
        method=str(message.get("method", "GET"))[:16],
        url=str(message.get("url", ""))[:4096],
        headers=headers,
        body=raw,
        timeout_s=float(timeout) if isinstance(timeout, int | float) else None,
    )


async def start_worker(
    spec: WorkerSpec,
    *,
    broker: HttpHandler | None = None,
    on_event: EventSink | None = None,
    report: SandboxReport | None = None,
) -> Worker:
    """Start `spec`'s worker in the strongest tier the host offers and wait until it is ready.

    `broker` answers the module's HTTP requests (none: every request is refused); `on_event`
    receives violations, timeouts and crashes (awaited before the failing call returns).

    Raises:
        SandboxUnavailable: the host offers no sandbox tier (`sandbox_report()` says why).
        ModuleLoadFailed: the entry did not import, enumeration failed, or it was not ready in time.
    """
    report = report or sandbox_report()
    if report.tier == "refused":
        raise SandboxUnavailable("modules are refused on this host: " + "; ".join(report.problems))
    worker = Worker(spec, report, broker, on_event)
    try:
        await worker._start()
    except ModuleLoadFailed as exc:
        await worker._shutdown(graceful=False)
        await worker._emit("load_failed", "load failed", detail=exc.problem)
        raise
    await worker._emit("started", worker.tier)
    return worker
