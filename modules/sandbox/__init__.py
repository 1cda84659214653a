"""Module workers: each active module version runs in its own sandboxed, long-lived process.

The lifecycle (validation, approval, hot-load) uses this seam::

    report = sandbox_report()                      # tier for `toolkiln doctor`
    worker = await start_worker(WorkerSpec(...), broker=Broker(...), on_event=...)
    await worker.tools()                           # what the code declares (ToolSpec)
    await worker.run_tests()                       # TestReport of the module's own tests
    registry.replace_source(source, module_tools(worker, specs))   # through the policy chain
    await worker.stop()
"""

from modules.sandbox.errors import (
    ModuleLoadFailed,
    ModuleToolError,
    ResourceExceeded,
    SandboxUnavailable,
    SandboxViolation,
    WorkerCrashed,
)
from modules.sandbox.report import SandboxReport, sandbox_report
from modules.sandbox.spec import Limits, SandboxEvent, TestCase, TestReport, ToolSpec, WorkerSpec
from modules.sandbox.worker import EventSink, Worker, start_worker

__all__ = [
    "EventSink",
    "Limits",
    "ModuleLoadFailed",
    "ModuleToolError",
    "ResourceExceeded",
    "SandboxEvent",
    "SandboxReport",
    "SandboxUnavailable",
    "SandboxViolation",
    "TestCase",
    "TestReport",
    "ToolSpec",
    "Worker",
    "WorkerCrashed",
    "WorkerSpec",
    "sandbox_report",
    "start_worker",
]
