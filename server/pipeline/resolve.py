"""Resolve the tool by exact name; hidden and missing tools fail alike."""

from __future__ import annotations

from server.pipeline.chain import CallNext, Pipeline, Step, ToolCall
from tools.errors import ToolHidden, UnknownTool
from tools.model import ToolOutcome

__all__ = ["ResolveTool"]


class ResolveTool(Step):
    """Looks the name up exactly (no case folding or trimming) and checks visibility.

    The pipeline is attached after construction because visibility is the pipeline's own
    decision (every step's `visible`), and the pipeline is built from the steps.
    """

    name = "resolve"

    def __init__(self) -> None:
        self._pipeline: Pipeline | None = None

    def attach(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        if self._pipeline is None:
            raise RuntimeError("ResolveTool is not attached to a pipeline")
        if not isinstance(call.name, str):
            raise UnknownTool(repr(call.name))
        # A subject resolved by its entry point (a resource, a prompt) is not in the tool registry.
        tool = call.tool if call.tool is not None else self._pipeline.registry.get(call.name)
        if tool is None:
            raise UnknownTool(call.name)
        if not self._pipeline.is_visible(tool, call.context.principal):
            raise ToolHidden(call.name)
        call.tool = tool
        return await call_next(call)
