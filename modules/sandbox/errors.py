"""How a module worker fails, as members of the one exception tree (`tools.errors`)::

    ToolFailure
    ├── ModuleToolError        → the module's own code raised (its message, bounded)
    ├── SandboxViolation       → the sandbox stopped the module: seccomp kill, denied access,
    │   │                        a malformed or oversized frame (audit status `sandbox_violation`)
    │   └── ResourceExceeded   → a resource limit was hit: memory, file size, CPU, processes
    └── ToolCrashed
        └── WorkerCrashed      → the worker died for another reason
    SetupError
    ├── ModuleLoadFailed       → the entry did not import, or enumeration failed or timed out
    └── SandboxUnavailable     → this host offers no sandbox tier; modules are refused

A call that outlives its deadline raises `tools.errors.ToolTimeout` (its worker is killed).
"""

from __future__ import annotations

from tools.errors import SetupError, ToolCrashed, ToolFailure

__all__ = [
    "ModuleLoadFailed",
    "ModuleToolError",
    "ResourceExceeded",
    "SandboxUnavailable",
    "SandboxViolation",
    "WorkerCrashed",
]


class ModuleToolError(ToolFailure):
    """The module's tool raised; the message is the exception's type and text."""


class SandboxViolation(ToolFailure):
    """The sandbox stopped something the module tried; `reason` is a short stable word."""

    audit_status = "sandbox_violation"

    def __init__(self, module: str, reason: str, detail: str = "") -> None:
        text = f"Module '{module}' was stopped by the sandbox: {reason}"
        super().__init__(f"{text} ({detail})" if detail else text)
        self.module = module
        self.reason = reason
        self.detail = detail


class ResourceExceeded(SandboxViolation):
    """A resource limit stopped the module (memory, file size, CPU time, processes, output)."""


class WorkerCrashed(ToolCrashed):
    """The worker process ended without the sandbox having stopped it (an exit, a crash)."""


class ModuleLoadFailed(SetupError):
    """The module could not be started: what failed, where, and why (for the author to fix)."""

    def __init__(self, module: str, problem: str) -> None:
        super().__init__(f"Module '{module}' failed to load: {problem}")
        self.module = module
        self.problem = problem


class SandboxUnavailable(SetupError):
    """No sandbox tier is possible on this host; modules are refused (`toolkiln doctor` says why)."""
