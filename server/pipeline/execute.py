"""The end of the chain: run the executor, turning surprises into `ToolCrashed`."""

from __future__ import annotations

import anyio
import structlog

from server.pipeline.chain import ToolCall
from tools.errors import ToolCrashed, ToolkilnError
from tools.model import ToolOutcome

__all__ = ["execute"]

log = structlog.get_logger("toolkiln.execute")


async def execute(call: ToolCall) -> ToolOutcome:
    """Run the resolved tool's executor with the validated arguments."""
    tool = call.resolved
    try:
        return await tool.executor(call.checked_arguments, call.context)
    except ToolkilnError:
        raise
    except (anyio.get_cancelled_exc_class(), GeneratorExit):
        # The deadline or the client cancelled us: that must keep unwinding.
        raise
    except BaseException as exc:  # the executor boundary: nothing from a tool takes the server down
        # BaseException, because a tool raising SystemExit or KeyboardInterrupt would otherwise
        # end the whole server process; the event loop delivers real Ctrl-C as a cancellation.
        log.exception("tool_crashed", tool=tool.name, source=tool.source)
        detail = str(exc)[:300] or type(exc).__name__
        raise ToolCrashed(f"Tool '{tool.name}' failed: {detail}") from exc
