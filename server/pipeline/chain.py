"""The one call pipeline: an ordered chain of small steps around every tools/list and tools/call.

A step sees a `ToolCall` and a `call_next` continuation (the onion shape), so a step can act
before the call (validate, authorize, reserve), after it (settle, audit) or around it (deadline,
logging). Listing uses the same steps: a tool is visible only if every step's `visible` agrees,
so a tool the caller cannot call is a tool the caller cannot see.

Later features add steps here; transports and sources never change for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.wire import failure_result
from tools.errors import Refusal
from tools.model import CallContext, Principal, Tool, ToolOutcome
from tools.registry import ToolRegistry

__all__ = ["CallNext", "Pipeline", "Step", "ToolCall"]


@dataclass(slots=True)
class ToolCall:
    """One tools/call as it moves down the chain.

    `arguments` is what the client sent until the validation step replaces it with the checked
    mapping; `tool` is filled by the resolve step (or given up front by an entry point that
    resolves its own subjects). Steps may record facts in `notes` for the
    steps after them (e.g. the policy rule that decided).
    """

    name: str
    arguments: Any
    context: CallContext
    tool: Tool | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved(self) -> Tool:
        if self.tool is None:
            raise RuntimeError("step ordering bug: the tool is not resolved yet")
        return self.tool

    @property
    def checked_arguments(self) -> Mapping[str, Any]:
        if not isinstance(self.arguments, Mapping):
            raise RuntimeError("step ordering bug: arguments are not validated yet")
        return self.arguments


CallNext = Callable[[ToolCall], Awaitable[ToolOutcome]]


class Step:
    """A pipeline step. The defaults pass everything through; override what the step needs."""

    name = "step"

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        return await call_next(call)

    def visible(self, tool: Tool, principal: Principal) -> bool:
        return True


class Pipeline:
    """Composes the steps once; every list and call goes through `list_tools` and `call_tool`."""

    def __init__(self, registry: ToolRegistry, steps: Sequence[Step], terminal: CallNext) -> None:
        self.registry = registry
        self.steps = tuple(steps)
        self._visibility = tuple(step.visible for step in self.steps if type(step).visible is not Step.visible)
        chain: CallNext = terminal
        for step in reversed(self.steps):
            chain = _bind(step, chain)
        self._chain = chain

    def is_visible(self, tool: Tool, principal: Principal) -> bool:
        return all(check(tool, principal) for check in self._visibility)

    def list_tools(self, principal: Principal) -> list[Tool]:
        """The tools `principal` may see, in registry order."""
        tools = self.registry.tools()
        if not self._visibility:
            return list(tools)
        return [tool for tool in tools if self.is_visible(tool, principal)]

    async def run(self, name: str, arguments: Any, context: CallContext, *, tool: Tool | None = None) -> ToolOutcome:
        """Run one call through every step.

        `tool` is for entry points that resolve their own subjects (a resource, a prompt: see
        `server.pipeline.subjects`); the resolve step still decides its visibility, so a hidden
        subject fails exactly like a missing one.

        Raises:
            tools.errors.ToolkilnError: the step or executor that failed says why; the server
                turns it into the wire form with `server.wire`.
        """
        return await self._chain(ToolCall(name=name, arguments=arguments, context=context, tool=tool))

    async def call_tool(self, name: str, arguments: Any, context: CallContext) -> ToolOutcome:
        """`run` for in-process callers: a `Refusal` comes back as the result a client would get.

        Raises:
            tools.errors.ToolkilnError: any other failure, as `run` raises it.
        """
        try:
            return await self._chain(ToolCall(name=name, arguments=arguments, context=context))
        except Refusal as refusal:
            return failure_result(refusal)


def _bind(step: Step, call_next: CallNext) -> CallNext:
    async def run(call: ToolCall) -> ToolOutcome:
        return await step.call(call, call_next)

    return run
