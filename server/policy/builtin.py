"""The built-in roles and the rules that give them meaning.

    readonly   tools annotated read-only
    agent      readonly + mutating tools annotated non-destructive
    developer  agent + destructive tools, except those tagged `admin` (management tools)
    admin      every tool

Config may add rules for these roles (a deny for `agent`, say) and define roles that inherit
from them, but may not redefine them, so their meaning is the same on every server.

Resources and prompts are read-only subjects (server.pipeline.subjects), so every role may read
them unless they are tagged `admin` or a rule denies them; `endpoint:metrics` is tagged `admin`.
"""

from __future__ import annotations

from server.policy.model import RoleSettings, RuleSettings

__all__ = ["ADMIN_TAG", "BUILTIN_ROLES", "BUILTIN_RULES"]

ADMIN_TAG = "admin"

BUILTIN_ROLES: dict[str, RoleSettings] = {
    "readonly": RoleSettings(description="call tools annotated read-only"),
    "agent": RoleSettings(inherits=("readonly",), description="readonly, plus non-destructive mutating tools"),
    "developer": RoleSettings(
        inherits=("agent",), description="agent, plus destructive tools except those tagged 'admin'"
    ),
    "admin": RoleSettings(description="every tool"),
}

BUILTIN_RULES: tuple[RuleSettings, ...] = (
    RuleSettings(id="builtin:admin-all", roles=("admin",), description="admin may call every tool"),
    RuleSettings(
        id="builtin:developer-destructive",
        roles=("developer",),
        access=("destructive",),
        exclude_tags=(ADMIN_TAG,),
        description="developer may call destructive tools not tagged 'admin'",
    ),
    RuleSettings(
        id="builtin:agent-write",
        roles=("agent",),
        access=("write",),
        exclude_tags=(ADMIN_TAG,),
        description="agent may call non-destructive mutating tools not tagged 'admin'",
    ),
    RuleSettings(
        id="builtin:readonly-read",
        roles=("readonly",),
        access=("read",),
        exclude_tags=(ADMIN_TAG,),
        description="readonly may call read-only tools not tagged 'admin'",
    ),
)
