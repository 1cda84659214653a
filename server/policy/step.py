"""The authorization step: the policy's decision on every tools/list and tools/call.

`visible` filters listing and resolution (so a tool the caller may not use is indistinguishable
from a tool that does not exist); `call` runs after argument validation and decides on the final
arguments — the validated arguments with the schema's top-level defaults filled in, which are
also what the executor receives, so a default can never slip a forbidden value past a condition.

Tools may name the upstream operation they reach in `meta["upstream_operation"]`; tools sharing
one operation are decided together (every one must be allowed), so a second, more generously
granted name for the same operation does not widen access.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import structlog

from server.pipeline.chain import CallNext, Step, ToolCall
from server.policy.engine import Decision
from server.policy.loader import PolicyHolder
from tools.errors import ToolHidden
from tools.model import UPSTREAM_OPERATION, Principal, Tool, ToolOutcome
from tools.registry import ToolRegistry

__all__ = ["UPSTREAM_OPERATION", "Authorize", "final_arguments"]

log = structlog.get_logger("toolkiln.policy")


def _defaults(tool: Tool) -> dict[str, Any]:
    properties = tool.input_schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {
        name: schema["default"]
        for name, schema in properties.items()
        if isinstance(schema, Mapping) and "default" in schema
    }


def final_arguments(tool: Tool, arguments: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> Any:
    """`arguments` with absent top-level properties set to their schema `default`."""
    defaults = _defaults(tool) if defaults is None else defaults
    missing = [name for name in defaults if name not in arguments]
    if not missing:
        return arguments
    filled = dict(arguments)
    for name in missing:
        filled[name] = copy.deepcopy(defaults[name])
    return filled


class Authorize(Step):
    """Allows or hides; records the deciding rule in `call.notes["policy_rule"]`."""

    name = "authorize"

    def __init__(self, holder: PolicyHolder, registry: ToolRegistry | None = None) -> None:
        self.holder = holder
        self._registry = registry
        self._groups: dict[Any, tuple[Tool, ...]] = {}
        self._groups_version = -1
        self._defaults: dict[str, tuple[Tool, dict[str, Any]]] = {}

    def _group(self, tool: Tool) -> tuple[Tool, ...]:
        key = tool.meta.get(UPSTREAM_OPERATION)
        if key is None or self._registry is None:
            return (tool,)
        if self._groups_version != self._registry.version:
            groups: dict[Any, list[Tool]] = {}
            for each in self._registry.tools():
                operation = each.meta.get(UPSTREAM_OPERATION)
                if operation is not None:
                    groups.setdefault(operation, []).append(each)
            self._groups = {operation: tuple(members) for operation, members in groups.items()}
            self._groups_version = self._registry.version
        group = self._groups.get(key, ())
        return group if tool in group else (tool, *group)

    def _defaults_of(self, tool: Tool) -> dict[str, Any]:
        cached = self._defaults.get(tool.name)
        if cached is not None and cached[0] is tool:
            return cached[1]
        defaults = _defaults(tool)
        self._defaults[tool.name] = (tool, defaults)
        return defaults

    def visible(self, tool: Tool, principal: Principal) -> bool:
        policy = self.holder.current
        return all(policy.visible(member, principal) for member in self._group(tool))

    def decide(self, tool: Tool, principal: Principal, arguments: Mapping[str, Any] | None) -> Decision:
        """The decision for `tool` and its operation group (the strictest member wins)."""
        policy = self.holder.current
        decision = policy.decide(tool, principal, arguments)
        if decision.allowed:
            for member in self._group(tool):
                if member is not tool:
                    other = policy.decide(member, principal, arguments)
                    if not other.allowed:
                        return Decision(False, other.rule, f"{other.reason} (via '{member.name}', same operation)")
        return decision

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        tool = call.resolved
        principal = call.context.principal
        arguments = final_arguments(tool, call.checked_arguments, self._defaults_of(tool))
        decision = self.decide(tool, principal, arguments)
        call.notes["policy_rule"] = decision.rule
        call.notes["policy_decision"] = "allow" if decision.allowed else "deny"
        if not decision.allowed:
            log.info("policy_denied", tool=tool.name, principal=principal.id, rule=decision.rule)
            raise ToolHidden(call.name)
        call.arguments = arguments
        return await call_next(call)
