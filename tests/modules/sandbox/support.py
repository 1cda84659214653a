"""A runtime whose tools forward to real module workers, with sandbox events in the audit log."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modules.sandbox import Limits, SandboxEvent, ToolSpec, Worker, WorkerSpec, sandbox_report
from modules.sandbox.report import SandboxReport
from server.runtime import Runtime
from tools.model import CallContext, Tool, ToolOutcome

__all__ = ["MODULES", "TIERS", "AuditSink", "module_tool", "report_for", "spec_for"]

MODULES = Path(__file__).parent / "modules"
# Small limits keep every attack fast; the full tier is what CI hosts offer, the fallback is what a
# host without user namespaces gets. Both are exercised.
SMALL = Limits(cpu_s=5, memory_mb=256, processes=8, open_files=32, file_size_mb=4, call_timeout_s=5.0)
TIERS = ("full", "fallback")


def report_for(tier: str) -> SandboxReport:
    report = sandbox_report()
    if report.tier == "refused" or (tier == "full" and report.tier != "full"):
        import pytest

        pytest.skip(f"this host does not offer the {tier} tier: {report.problems}")
    return dataclasses.replace(report, tier=tier)  # type: ignore[arg-type]


def spec_for(name: str, **limits: Any) -> WorkerSpec:
    return WorkerSpec(
        name=name,
        version="1.0.0",
        module_dir=MODULES / name,
        entry="adapter.py",
        limits=dataclasses.replace(SMALL, **limits),
    )


def module_tool(worker: Worker, spec: ToolSpec, *, timeout_s: float = 5.0) -> Tool:
    name = spec.name

    async def execute(arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
        return await worker.call(name, dict(arguments), context.deadline_s)

    return Tool(
        name=f"{worker.spec.name}.{name}",
        description=name,
        # The attack tools declare no properties; their arguments pass through as given.
        input_schema=spec.input_schema
        if "properties" in spec.input_schema
        else {"type": "object", "additionalProperties": True},
        executor=execute,
        source="modules",
        meta={"timeout_s": timeout_s},
    )


class AuditSink:
    """Appends each sandbox event to the runtime's audit chain as an `event` record."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.events: list[SandboxEvent] = []

    async def __call__(self, event: SandboxEvent) -> None:
        self.events.append(event)
        recorder = self.runtime.ledger.recorder
        assert recorder is not None
        fields = {"source": f"module:{event.module}", "reason": event.reason, "detail": event.detail}

        def op(conn: sqlite3.Connection, batch: Any) -> int:
            return recorder.log.append(
                conn, batch, kind="event", call_id=f"sandbox-{len(self.events)}", principal="system",
                tool=event.tool or event.module, status=event.kind, fields=fields,
            )  # fmt: skip

        await recorder.writer.run(op)
