"""The policy engine: one decision for listing and for calling.

A `Policy` is immutable and compiled once: globs become regexes, conditions become closures,
roles are expanded through inheritance. Per (roles, tool) it caches which rules apply, so a list
or a call costs a dict lookup plus the conditions of the few rules that apply.

The decision, for a principal and a tool:

1. a deny rule that applies and whose condition holds *or is undecided* → denied;
2. else the first allow rule that applies and whose condition holds → allowed;
3. else denied by default.

Visibility is the same decision before arguments exist: a tool is visible when no
unconditional deny applies and some allow rule applies (its condition may still refuse a call).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from server.policy.builtin import BUILTIN_ROLES, BUILTIN_RULES
from server.policy.conditions import Check, compile_condition, describe_condition
from server.policy.model import Access, Effect, PolicyFile, RoleSettings, RuleSettings
from server.policy.safe_regex import PatternError
from tools.model import Principal, Tool

__all__ = ["DEFAULT_DENY", "Decision", "Policy", "PolicyError", "access_of"]

DEFAULT_DENY = "default-deny"
_CACHE_LIMIT = 100_000


class PolicyError(ValueError):
    """The policy is inconsistent (unknown role, inheritance cycle, bad pattern, duplicate id)."""

    def __init__(self, message: str, *, key: str | None = None, origin: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.origin = origin


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str
    reason: str


def access_of(tool: Tool) -> Access:
    """The access class policy sees, from annotations (MCP defaults: mutating, destructive)."""
    if tool.annotations.read_only is True:
        return "read"
    if tool.annotations.destructive is False:
        return "write"
    return "destructive"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    effect: Effect
    origin: str
    settings: RuleSettings
    matches: Callable[[Tool], bool]
    check: Check | None

    def describe(self) -> str:
        when = f" when {describe_condition(self.settings.when)}" if self.settings.when is not None else ""
        return f"{self.effect} rule '{self.id}' ({self.origin}){when}"


def _globs(patterns: Iterable[str]) -> Callable[[str], bool] | None:
    patterns = tuple(patterns)
    if not patterns:
        return None
    if patterns == ("*",):
        return lambda _: True
    joined = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: joined.match(name) is not None


def _matcher(rule: RuleSettings) -> Callable[[Tool], bool]:
    names = _globs(rule.tools)
    sources = _globs(rule.sources)
    tags = frozenset(rule.tags)
    excluded = frozenset(rule.exclude_tags)
    access = frozenset(rule.access)

    def matches(tool: Tool) -> bool:
        return (
            (names is None or names(tool.name))
            and (sources is None or sources(tool.source))
            and (not tags or not tags.isdisjoint(tool.tags))
            and (not excluded or excluded.isdisjoint(tool.tags))
            and (not access or access_of(tool) in access)
        )

    return matches


@dataclass(frozen=True, slots=True)
class _Applicable:
    denies: tuple[CompiledRule, ...]
    allows: tuple[CompiledRule, ...]
    visible: bool


class Policy:
    """Built-in roles and rules plus configured parts, validated and compiled."""

    def __init__(self, parts: Iterable[tuple[PolicyFile, str]] = (), *, version: int = 0) -> None:
        """Compile `parts` (policy contents and where each came from) over the built-ins.

        Raises:
            PolicyError: naming the key and origin of the first inconsistency.
        """
        self.version = version
        parts = list(parts)
        roles: dict[str, RoleSettings] = dict(BUILTIN_ROLES)
        grants: dict[str, set[str]] = {}
        for contents, origin in parts:
            for name, role in contents.roles.items():
                if name in BUILTIN_ROLES:
                    raise PolicyError(f"'{name}' is a built-in role", key=f"roles.{name}", origin=origin)
                if name in roles:
                    raise PolicyError(f"role '{name}' is defined twice", key=f"roles.{name}", origin=origin)
                if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
                    raise PolicyError(f"bad role name {name[:70]!r}", key=f"roles.{name[:70]}", origin=origin)
                roles[name] = role
            for principal, granted in contents.principals.items():
                grants.setdefault(principal, set()).update(granted)
        self.roles = roles
        self._ancestors = {name: self._expand(name, (), roles, parts) for name in roles}
        for principal, extra in grants.items():
            for role_name in extra:
                if role_name not in roles:
                    raise PolicyError(f"unknown role '{role_name}'", key=f"principals.{principal}")
        self.principals = {p: tuple(sorted(g)) for p, g in grants.items()}
        rules: list[CompiledRule] = [self._compile(rule, "builtin") for rule in BUILTIN_RULES]
        seen = {rule.id for rule in rules}
        for contents, origin in parts:
            for index, rule in enumerate(contents.rules):
                if rule.id in seen:
                    raise PolicyError(f"rule id '{rule.id}' is used twice", key=f"rules.{index}.id", origin=origin)
                seen.add(rule.id)
                for role_name in rule.roles:
                    if role_name not in roles:
                        raise PolicyError(f"unknown role '{role_name}'", key=f"rules.{index}.roles", origin=origin)
                try:
                    rules.append(self._compile(rule, origin))
                except PatternError as exc:
                    where = f"rules.{index}.when"
                    raise PolicyError(f"bad 'matches' pattern: {exc}", key=where, origin=origin) from None
        self.rules = tuple(rules)
        self._order = {rule.id: index for index, rule in enumerate(self.rules)}
        self._by_role: dict[str, tuple[CompiledRule, ...]] = {
            name: tuple(rule for rule in self.rules if name in rule.settings.roles) for name in roles
        }
        self._roles_cache: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}
        self._cache: dict[tuple[frozenset[str], str], tuple[Tool, _Applicable]] = {}

    @staticmethod
    def _expand(
        name: str, trail: tuple[str, ...], roles: Mapping[str, RoleSettings], parts: list[tuple[PolicyFile, str]]
    ) -> frozenset[str]:
        if name in trail:
            cycle = " → ".join((*trail[trail.index(name) :], name))
            raise PolicyError(f"role inheritance cycle: {cycle}", key=f"roles.{name}.inherits")
        found = {name}
        for parent in roles[name].inherits:
            if parent not in roles:
                origin = next((o for c, o in parts if name in c.roles), None)
                raise PolicyError(f"unknown role '{parent}'", key=f"roles.{name}.inherits", origin=origin)
            found |= Policy._expand(parent, (*trail, name), roles, parts)
        return frozenset(found)

    @staticmethod
    def _compile(rule: RuleSettings, origin: str) -> CompiledRule:
        check = compile_condition(rule.when) if rule.when is not None else None
        return CompiledRule(rule.id, rule.effect, origin, rule, _matcher(rule), check)

    # -- decisions -----------------------------------------------------------------------------
    def roles_of(self, principal: Principal) -> frozenset[str]:
        """The principal's roles plus configured grants, expanded; unknown role names drop out."""
        key = (principal.id, principal.roles)
        cached = self._roles_cache.get(key)
        if cached is not None:
            return cached
        names = (*principal.roles, *self.principals.get(principal.id, ()))
        expanded: frozenset[str] = frozenset().union(*(self._ancestors[n] for n in names if n in self._ancestors))
        if len(self._roles_cache) >= _CACHE_LIMIT:
            self._roles_cache.clear()
        self._roles_cache[key] = expanded
        return expanded

    def _applicable(self, tool: Tool, principal: Principal) -> _Applicable:
        roles = self.roles_of(principal)
        key = (roles, tool.name)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is tool:
            return cached[1]
        seen: set[str] = set()
        rules: list[CompiledRule] = []
        for role in sorted(roles):
            for rule in self._by_role[role]:
                if rule.id not in seen and rule.matches(tool):
                    seen.add(rule.id)
                    rules.append(rule)
        rules.sort(key=lambda rule: self._order[rule.id])
        denies = tuple(rule for rule in rules if rule.effect == "deny")
        allows = tuple(rule for rule in rules if rule.effect == "allow")
        visible = bool(allows) and not any(rule.check is None for rule in denies)
        applicable = _Applicable(denies, allows, visible)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = (tool, applicable)
        return applicable

    def visible(self, tool: Tool, principal: Principal) -> bool:
        return self._applicable(tool, principal).visible

    def decide(self, tool: Tool, principal: Principal, arguments: Mapping[str, Any] | None) -> Decision:
        """The decision for calling `tool` with the final `arguments` (None: deciding visibility)."""
        applicable = self._applicable(tool, principal)
        for rule in applicable.denies:
            if rule.check is None:
                return Decision(False, rule.id, f"denied by {rule.describe()}")
            if arguments is None:
                continue
            result = rule.check(arguments)
            if result is not False:
                why = "condition holds" if result else "condition undecided (missing or mistyped argument)"
                return Decision(False, rule.id, f"denied by {rule.describe()}: {why}")
        for rule in applicable.allows:
            if rule.check is None:
                return Decision(True, rule.id, f"allowed by {rule.describe()}")
            if arguments is None:
                return Decision(True, rule.id, f"visible through {rule.describe()}")
            if rule.check(arguments) is True:
                return Decision(True, rule.id, f"allowed by {rule.describe()}")
        if applicable.allows:
            return Decision(False, DEFAULT_DENY, "no allow rule's condition holds for these arguments")
        return Decision(False, DEFAULT_DENY, "no allow rule grants this tool to these roles")
