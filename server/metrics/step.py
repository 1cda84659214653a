"""The metrics the server exposes, and the pipeline step that records them for every call."""

from __future__ import annotations

import time

from server.audit import notes
from server.audit.status import DENIAL_STATUSES, ERROR_STATUSES, classify
from server.metrics.registry import Counter, Histogram, MetricsRegistry
from server.pipeline.chain import CallNext, Step, ToolCall
from tools.model import ToolOutcome

__all__ = ["CONTENT_TYPE", "Metrics", "RecordMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Names a caller asked for that resolve to no tool are attacker-chosen: one label for all of them.
UNKNOWN_TOOL = "(unknown)"


class Metrics:
    """Per-process call metrics: calls, errors, denials and latency per tool and source."""

    def __init__(self) -> None:
        self.registry = MetricsRegistry()
        labels = ("tool", "source", "status")
        self.calls = Counter("toolkiln_tool_calls_total", "Tool calls by tool, source and outcome status.", labels)
        self.errors = Counter("toolkiln_tool_errors_total", "Tool calls that ran and failed.", labels)
        self.denials = Counter(
            "toolkiln_tool_denials_total", "Tool calls refused by policy, rate limits or quotas.", labels
        )
        self.latency = Histogram(
            "toolkiln_tool_call_duration_seconds", "Tool call latency through the whole pipeline.", ("tool", "source")
        )
        self.shadow = Counter(
            "toolkiln_limit_shadow_refusals_total", "Calls a limit in shadow mode would have refused.", ("limit",)
        )
        for family in (self.calls, self.errors, self.denials, self.latency, self.shadow):
            self.registry.register(family)

    def observe(self, call: ToolCall, outcome: object, seconds: float) -> None:
        tool = call.tool
        name = tool.name if tool is not None else UNKNOWN_TOOL
        source = tool.source if tool is not None else ""
        status = classify(call.notes, outcome)
        self.calls.inc(name, source, status)
        if status in DENIAL_STATUSES:
            self.denials.inc(name, source, status)
        elif status in ERROR_STATUSES or status in ("invalid", "in_progress"):
            self.errors.inc(name, source, status)
        self.latency.observe(seconds, name, source)
        for limit in call.notes.get(notes.SHADOW) or ():
            self.shadow.inc(str(limit))

    def exposition(self) -> str:
        return self.registry.exposition()


class RecordMetrics(Step):
    """Outer step: times every call and counts how it ended."""

    name = "metrics"

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        started = time.perf_counter()
        outcome: object = None
        try:
            result = await call_next(call)
            outcome = result
            return result
        except BaseException as exc:
            outcome = exc
            raise
        finally:
            self._metrics.observe(call, outcome, time.perf_counter() - started)
