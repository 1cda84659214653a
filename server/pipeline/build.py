"""The standard step order. Policy, limits, idempotency and audit slot in here."""

from __future__ import annotations

from collections.abc import Sequence

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
    after_validation: Sequence[Step] = (),
) -> Pipeline:
    """log → resolve → validate → [after_validation…] → deadline → execute.

    `after_validation` is where steps that need the final arguments go (authorization with
    argument conditions, limits, idempotency, audit).
    """
    resolve = ResolveTool()
    steps: list[Step] = [LogCalls(), resolve, ValidateArguments(), *after_validation, Deadline(call_timeout_s)]
    pipeline = Pipeline(registry, steps, execute)
    resolve.attach(pipeline)
    return pipeline
