"""Structured logging of every call: one line per outcome, with duration."""

from __future__ import annotations

import time

import anyio
import structlog

from server.pipeline.chain import CallNext, Step, ToolCall
from tools.errors import ProtocolFault, ToolkilnError
from tools.model import ToolOutcome, ToolResult

__all__ = ["LogCalls"]

log = structlog.get_logger("toolkiln.call")

_MAX_NAME = 128


class LogCalls(Step):
    """Outermost step: sees every outcome, including the ones earlier steps raise."""

    name = "log"

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = await call_next(call)
            if isinstance(result, ToolResult) and result.is_error:
                outcome = "tool_error"
            return result
        except ProtocolFault:
            outcome = "rejected"
            raise
        except ToolkilnError as exc:
            outcome = type(exc).__name__
            raise
        except BaseException as exc:
            outcome = "cancelled" if _is_cancel(exc) else "crashed"
            raise
        finally:
            log.info(
                "tool_call",
                # The name is the caller's text until resolved: bounded, so one request with a
                # megabyte name cannot write a megabyte log line (JSON escapes control characters).
                tool=call.name[:_MAX_NAME] if isinstance(call.name, str) else repr(call.name)[:_MAX_NAME],
                principal=call.context.principal.id,
                outcome=outcome,
                ms=round((time.perf_counter() - started) * 1000, 3),
            )


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, anyio.get_cancelled_exc_class())
