"""The standard step order. Policy, limits, idempotency and audit slot in here."""

from __future__ import annotations

from collections.abc import Sequence

from server.pipeline.capabilities import RequireClientCapabilities
from server.pipeline.chain import Pipeline, Step
from server.pipeline.deadline import Deadline
from server.pipeline.execute import execute
from server.pipeline.observe import LogCalls
from server.pipeline.resolve import ResolveTool
from server.pipeline.validate import ValidateArguments
from tools.registry import ToolRegistry

__all__ = ["build_pipeline"]


def build_pipeline(
    registry: ToolRegistry,
    *,
    call_timeout_s: float,
    authorize: Step | None = None,
    after_validation: Sequence[Step] = (),
    outer: Sequence[Step] = (),
    before_execute: Sequence[Step] = (),
) -> Pipeline:
    """log → resolve → validate → [authorize] → client capabilities → [after_validation…] → deadline → execute.

    `authorize` (the policy step) decides on the validated arguments and its `visible` filters
    listing and resolution; `after_validation` is where the steps that follow it go (limits,
    idempotency, audit).

    `outer` steps run right after logging and around resolve, so they see every call, including
    unknown, hidden, invalid and denied ones (metrics, the audit outcome); `before_execute` steps
    run last before the deadline (rate limits and quota, idempotency, the audit intent).
    """
    resolve = ResolveTool()
    policy = [authorize] if authorize is not None else []
    steps: list[Step] = [
        LogCalls(),
        *outer,
        resolve,
        ValidateArguments(),
        *policy,
        # After the policy: only a caller allowed to call the tool learns what it needs.
        RequireClientCapabilities(),
        *after_validation,
        *before_execute,
        Deadline(call_timeout_s),
    ]
    pipeline = Pipeline(registry, steps, execute)
    resolve.attach(pipeline)
    return pipeline
