"""The policy's configuration schema: roles, rules with argument conditions, principal grants.

It is the `[policy]` table of `toolkiln.toml` and, with the same shape minus `file`, the separate
policy file that can be reloaded while the server runs. Parsed strictly (unknown keys are errors)
into frozen models; `server.policy.engine` compiles them once into closures.

A condition is either a leaf — `arg` plus exactly one operator — or a combinator `all`/`any`.
`arg` is a literal top-level key when it is a string (`"a.b"` is the key `a.b`, never a path) and
a path into nested objects and arrays when it is a list (`["a", "b"]`, `["items", 0]`). There is
deliberately no `not`: negating a condition whose argument is missing would turn "missing means
deny" into "missing means allow".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

__all__ = [
    "Access",
    "Condition",
    "Effect",
    "PolicyFile",
    "PolicySettings",
    "RangeSpec",
    "RoleSettings",
    "RuleSettings",
]

Effect = Literal["allow", "deny"]
# From the tool's annotations: read = readOnlyHint; write = mutating with destructiveHint false;
# destructive = every other tool (MCP's defaults: not read-only, destructive).
Access = Literal["read", "write", "destructive"]

_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
ArgPath = str | tuple[str | int, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RangeSpec(_Frozen):
    """Numeric bounds; booleans and non-numbers never satisfy a range."""

    min: float | None = None
    max: float | None = None
    exclusive_min: float | None = None
    exclusive_max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> RangeSpec:
        if self.min is None and self.max is None and self.exclusive_min is None and self.exclusive_max is None:
            raise ValueError("a range needs at least one of min, max, exclusive_min, exclusive_max")
        return self


_OPERATORS = ("equals", "in_", "contains", "matches", "range")


class Condition(_Frozen):
    """A test on the final argument values of a call."""

    arg: ArgPath | None = None
    equals: JsonValue = None
    in_: tuple[JsonValue, ...] | None = Field(default=None, alias="in")
    contains: JsonValue = None
    matches: str | None = None
    range: RangeSpec | None = None
    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Condition:
        operators = [name for name in _OPERATORS if getattr(self, name) is not None]
        combinators = [name for name in ("all", "any") if getattr(self, name) is not None]
        if combinators:
            if len(combinators) > 1 or operators or self.arg is not None:
                raise ValueError("a condition is either 'all', 'any', or 'arg' with one operator")
            if not getattr(self, combinators[0]):
                raise ValueError(f"'{combinators[0]}' needs at least one condition")
            return self
        if self.arg is None:
            raise ValueError("a condition needs 'arg' (or 'all'/'any')")
        if isinstance(self.arg, tuple) and not self.arg:
            raise ValueError("an 'arg' path cannot be empty")
        if len(operators) != 1:
            shown = ", ".join(name.rstrip("_") for name in _OPERATORS)
            raise ValueError(f"a condition on 'arg' needs exactly one of: {shown}")
        return self

    @property
    def operator(self) -> str:
        return next(name.rstrip("_") for name in _OPERATORS if getattr(self, name) is not None)


class RuleSettings(_Frozen):
    """One permission: which roles, which tools, allow or deny, and an optional condition."""

    id: str = Field(pattern=_NAME)
    effect: Effect = "allow"
    roles: tuple[str, ...] = Field(min_length=1)
    # Exact tool names or globs (`github.*`); matched against the canonical name, case-sensitive.
    # Resources, prompts and endpoints are matched by their subject names (`resource:<uri>`,
    # `prompt:<name>`, `endpoint:metrics`; see server.pipeline.subjects), so `*` covers them too.
    tools: tuple[str, ...] = ("*",)
    # Source name globs; empty = any source.
    sources: tuple[str, ...] = ()
    # The tool must carry at least one of these tags; empty = any.
    tags: tuple[str, ...] = ()
    # The tool must carry none of these tags.
    exclude_tags: tuple[str, ...] = ()
    # Empty = any access class.
    access: tuple[Access, ...] = ()
    when: Condition | None = None
    description: str | None = None


class RoleSettings(_Frozen):
    inherits: tuple[str, ...] = ()
    description: str | None = None


class PolicyFile(_Frozen):
    """A policy file's contents (also the inline part of `[policy]`)."""

    roles: dict[str, RoleSettings] = Field(default_factory=dict)
    rules: tuple[RuleSettings, ...] = ()
    # Principal id → roles granted to it whatever transport or credential it arrives with.
    principals: dict[str, tuple[str, ...]] = Field(default_factory=dict)


class PolicySettings(PolicyFile):
    """`[policy]` in toolkiln.toml."""

    # A separate policy file, re-read when it changes; a bad reload keeps the last good policy.
    file: Path | None = None
    reload_interval_s: float = Field(default=2.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> PolicySettings:
        # Compile the inline part now, so an unknown role or a bad pattern is a config error with
        # the rest of the file's errors, not a surprise at start-up.
        from server.policy.engine import Policy, PolicyError

        try:
            Policy([(self, "toolkiln.toml")])
        except PolicyError as exc:
            raise ValueError(f"{exc.key}: {exc}" if exc.key else str(exc)) from None
        return self
