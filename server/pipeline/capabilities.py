"""Tools that cannot work without a client capability (sampling, elicitation) refuse clients lacking it.

A step rather than a check in the server's handler, so the refusal is logged, counted and audited
like every other outcome. It runs right after authorization: a hidden or denied tool has already
failed exactly like an unknown one, so the refusal never tells a caller about a tool it may not use.
"""

from __future__ import annotations

from typing import Any

from server.pipeline.chain import CallNext, Step, ToolCall
from tools.errors import MissingClientCapability
from tools.model import Tool, ToolOutcome

__all__ = ["REQUIRED_CLIENT_CAPABILITIES", "RequireClientCapabilities", "missing_capabilities"]

# `Tool.meta` key: the client capabilities a tool cannot work without, shaped like MCP
# `ClientCapabilities` (e.g. `{"sampling": {}}`).
REQUIRED_CLIENT_CAPABILITIES = "client_capabilities"


def missing_capabilities(tool: Tool, request: Any) -> dict[str, Any]:
    """The required capabilities the client behind `request` (an SDK request context) did not declare.

    A call without a session (in process) declares nothing.
    """
    required = tool.meta.get(REQUIRED_CLIENT_CAPABILITIES)
    if not required:
        return {}
    session = getattr(request, "session", None)
    declared = getattr(session, "client_capabilities", None)
    have = declared.model_dump(by_alias=True, exclude_none=True) if declared is not None else {}
    return {name: value for name, value in required.items() if name not in have}


class RequireClientCapabilities(Step):
    """Raises `MissingClientCapability` (-32021, with `data.requiredCapabilities`) before anything runs."""

    name = "client_capabilities"

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        tool = call.resolved
        if REQUIRED_CLIENT_CAPABILITIES in tool.meta:
            missing = missing_capabilities(tool, call.context.request)
            if missing:
                raise MissingClientCapability(tool.name, missing)
        return await call_next(call)
