"""A per-call deadline: a call that runs past it is cancelled and reported as a timeout."""

from __future__ import annotations

import anyio

from server.pipeline.chain import CallNext, Step, ToolCall
from tools.errors import ToolTimeout
from tools.model import ToolOutcome

__all__ = ["Deadline"]


class Deadline(Step):
    """Cancels the rest of the chain after `seconds` (a tool may ask for less via `meta`)."""

    name = "deadline"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        limit = float(call.resolved.meta.get("timeout_s", self.seconds))
        limit = min(limit, self.seconds)
        call.context.deadline_s = limit
        with anyio.move_on_after(limit) as scope:
            return await call_next(call)
        if scope.cancelled_caught:
            raise ToolTimeout(call.name, limit)
        raise AssertionError("unreachable")  # pragma: no cover
