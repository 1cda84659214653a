"""What a worker is started from, and what it reports back: plain data shared with the lifecycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "EventKind",
    "Limits",
    "SandboxEvent",
    "TestCase",
    "TestReport",
    "ToolSpec",
    "WorkerSpec",
]

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-worker resource limits, enforced in the worker (rlimits) and by the server (caps, deadlines).

    The defaults suit a small HTTP adapter; a manifest may lower them or raise them within reason.
    """

    cpu_s: int = 30  # RLIMIT_CPU over the worker's whole life (a restart resets it)
    memory_mb: int = 512  # RLIMIT_AS
    processes: int = 16  # RLIMIT_NPROC for the worker's uid (threads count)
    open_files: int = 64  # RLIMIT_NOFILE
    file_size_mb: int = 8  # RLIMIT_FSIZE, and the size of the private tmpfs (full tier)
    call_timeout_s: float = 30.0  # a call still running after this is killed with its worker
    start_timeout_s: float = 10.0  # import and tool enumeration must finish within this
    result_kb: int = 1024  # the largest result (and request frame) a worker may send
    log_kb_per_call: int = 64  # printed output kept per call; the rest is counted and dropped


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One module version to run.

    `module_dir` holds the code (mounted read-only); `entry` is the module's entry file relative to
    it (for example `adapter.py`); `egress` is the manifest's allowlist of `scheme://host:port`
    origins; `credentials` the handles the broker may inject (the worker never sees their values).
    """

    name: str
    version: str
    module_dir: Path
    entry: str
    egress: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()
    limits: Limits = Limits()

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the module's code declares it (`@toolkiln_module.tool`), enumerated in the sandbox."""

    name: str
    description: str
    input_schema: JsonObject
    output_schema: JsonObject | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ToolSpec:
        output = data.get("output_schema")
        return cls(
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            input_schema=dict(data.get("input_schema") or {"type": "object"}),
            output_schema=dict(output) if isinstance(output, Mapping) else None,
            annotations=dict(data.get("annotations") or {}),
        )


EventKind = Literal["started", "stopped", "violation", "timeout", "crashed", "load_failed", "tool_error"]


@dataclass(frozen=True, slots=True)
class SandboxEvent:
    """Something a worker did that the lifecycle counts (auto-disable) and the audit log records.

    `violation` means the sandbox stopped the module (seccomp kill, denied file access, a limit hit,
    an oversized or malformed frame); `crashed` that the worker died for another reason;
    `tool_error` that the module's code raised (a failure, not a violation).
    """

    module: str
    kind: EventKind
    reason: str
    tool: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TestCase:
    name: str
    passed: bool
    message: str = ""  # for a failure: the assertion or exception, and file:line where it happened


@dataclass(frozen=True, slots=True)
class TestReport:
    """The module's own tests (`tests/test_*.py`, functions `test_*`) run inside the sandbox."""

    cases: tuple[TestCase, ...]
    error: str | None = None  # the run itself failed (a test file did not import, the worker died)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.cases) and all(case.passed for case in self.cases)
