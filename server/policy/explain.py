"""`toolkiln policy explain`: which rule decides, and why, for a principal, a tool and arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.policy.engine import Decision, access_of
from server.policy.step import Authorize, final_arguments
from tools.model import Principal, Tool

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    principal: Principal
    effective_roles: tuple[str, ...]
    tool_name: str
    tool: Tool | None
    visible: bool
    decision: Decision
    arguments: Mapping[str, Any] | None
    considered: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal.id,
            "roles": list(self.principal.roles),
            "effective_roles": list(self.effective_roles),
            "tool": self.tool_name,
            "exists": self.tool is not None,
            "source": self.tool.source if self.tool else None,
            "access": access_of(self.tool) if self.tool else None,
            "visible": self.visible,
            "decision": "allow" if self.decision.allowed else "deny",
            "rule": self.decision.rule,
            "reason": self.decision.reason,
            "rules_considered": list(self.considered),
        }

    def render(self) -> str:
        lines = [
            f"principal: {self.principal.id}  roles: {', '.join(self.principal.roles) or '(none)'}",
            f"effective roles: {', '.join(self.effective_roles) or '(none)'}",
        ]
        if self.tool is None:
            lines.append(f"tool: {self.tool_name}  (no such tool)")
        else:
            tool, tags = self.tool, ", ".join(self.tool.tags) or "-"
            lines.append(f"tool: {tool.name}  source: {tool.source}  access: {access_of(tool)}  tags: {tags}")
            lines.append(f"listed: {'yes' if self.visible else 'no'}")
        for rule in self.considered:
            lines.append(f"  applies: {rule}")
        verdict = "ALLOW" if self.decision.allowed else "DENY"
        lines.append(f"decision: {verdict} — rule '{self.decision.rule}': {self.decision.reason}")
        return "\n".join(lines)


def explain(
    authorize: Authorize, tool: Tool | None, tool_name: str, principal: Principal, arguments: Mapping[str, Any] | None
) -> Explanation:
    """Decide as the pipeline would, but keep the reasoning."""
    policy = authorize.holder.current
    roles = tuple(sorted(policy.roles_of(principal)))
    if tool is None:
        decision = Decision(False, "unknown-tool", "no tool of that name is registered")
        return Explanation(principal, roles, tool_name, None, False, decision, arguments)
    final = None if arguments is None else final_arguments(tool, arguments)
    considered = tuple(
        rule.describe()
        for rule in policy.rules
        if not rule.settings.roles or set(rule.settings.roles) & set(roles)
        if rule.matches(tool)
    )
    decision = authorize.decide(tool, principal, final)
    visible = authorize.visible(tool, principal)
    return Explanation(principal, roles, tool_name, tool, visible, decision, final, considered)
