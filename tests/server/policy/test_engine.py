"""The policy engine's decisions: roles, inheritance, deny over allow, default deny."""

from __future__ import annotations

from typing import Any

import pytest

from server.policy.engine import DEFAULT_DENY, Policy, PolicyError
from server.policy.model import PolicyFile
from tests.server.policy.support import make_tool
from tools.model import Principal

READ = make_tool("files.read", access="read")
WRITE = make_tool("files.write", access="write")
DELETE = make_tool("files.delete", access="destructive")
BARE = make_tool("files.touch", access="unannotated")
ADMIN_TOOL = make_tool("modules.approve", access="write", tags=("admin",))
ALL_TOOLS = (READ, WRITE, DELETE, BARE, ADMIN_TOOL)


def policy(**contents: Any) -> Policy:
    return Policy([(PolicyFile.model_validate(contents), "test.toml")])


def who(*roles: str, id: str = "p") -> Principal:
    return Principal(id=id, roles=roles)


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        pytest.param("readonly", {"files.read"}, id="readonly"),
        pytest.param("agent", {"files.read", "files.write"}, id="agent"),
        pytest.param("developer", {"files.read", "files.write", "files.delete", "files.touch"}, id="developer"),
        pytest.param("admin", {t.name for t in ALL_TOOLS}, id="admin"),
        pytest.param("nonexistent", set(), id="unknown-role-sees-nothing"),
    ],
)
def test_each_builtin_role_sees_exactly_its_tools(role: str, visible: set[str]) -> None:
    engine = policy()
    assert {tool.name for tool in ALL_TOOLS if engine.visible(tool, who(role))} == visible
    for tool in ALL_TOOLS:
        assert engine.decide(tool, who(role), {}).allowed == (tool.name in visible)


def test_a_principal_with_no_roles_is_denied_by_default() -> None:
    decision = policy().decide(READ, who(), {})
    assert not decision.allowed
    assert decision.rule == DEFAULT_DENY


def test_custom_roles_inherit_transitively() -> None:
    engine = policy(
        roles={"support": {"inherits": ["readonly"]}, "lead": {"inherits": ["support"]}},
        rules=[{"id": "support-write", "roles": ["support"], "tools": ["files.write"]}],
    )
    assert engine.roles_of(who("lead")) == {"lead", "support", "readonly"}
    assert engine.decide(READ, who("lead"), {}).rule == "builtin:readonly-read"
    assert engine.decide(WRITE, who("lead"), {}).rule == "support-write"
    assert not engine.decide(DELETE, who("lead"), {}).allowed


def test_explicit_deny_beats_any_allow_even_admin() -> None:
    engine = policy(rules=[{"id": "no-deletes", "effect": "deny", "roles": ["admin"], "tools": ["*.delete"]}])
    decision = engine.decide(DELETE, who("admin"), {})
    assert not decision.allowed
    assert decision.rule == "no-deletes"
    assert not engine.visible(DELETE, who("admin"))
    assert engine.decide(WRITE, who("admin"), {}).allowed


def test_a_conditional_deny_keeps_the_tool_listed_but_refuses_matching_calls() -> None:
    tool = make_tool("deploy", access="destructive", properties={"env": {"type": "string"}})
    engine = policy(
        rules=[{"id": "no-prod", "effect": "deny", "roles": ["developer"], "when": {"arg": "env", "equals": "prod"}}]
    )
    assert engine.visible(tool, who("developer"))
    assert engine.decide(tool, who("developer"), {"env": "staging"}).allowed
    assert engine.decide(tool, who("developer"), {"env": "prod"}).rule == "no-prod"


def test_a_missing_argument_makes_a_deny_condition_fire() -> None:
    tool = make_tool("deploy", access="destructive")
    engine = policy(
        rules=[{"id": "no-prod", "effect": "deny", "roles": ["developer"], "when": {"arg": "env", "equals": "prod"}}]
    )
    decision = engine.decide(tool, who("developer"), {})
    assert not decision.allowed
    assert decision.rule == "no-prod"


def test_a_missing_argument_fails_an_allow_condition() -> None:
    tool = make_tool("refund", access="destructive")
    engine = policy(
        roles={"support": {}},
        rules=[{"id": "small-refunds", "roles": ["support"], "when": {"arg": "amount", "range": {"max": 100}}}],
    )
    assert engine.visible(tool, who("support"))
    assert engine.decide(tool, who("support"), {"amount": 50}).rule == "small-refunds"
    missing = engine.decide(tool, who("support"), {})
    assert not missing.allowed
    assert missing.rule == DEFAULT_DENY
    assert not engine.decide(tool, who("support"), {"amount": "50"}).allowed


def test_rules_match_on_source_tags_excluded_tags_and_access() -> None:
    billing = make_tool("charge", access="write", source="billing", tags=("money",))
    other = make_tool("charge2", access="write", source="crm", tags=("money",))
    engine = policy(
        roles={"finance": {}},
        rules=[{"id": "finance", "roles": ["finance"], "sources": ["bill*"], "tags": ["money"], "access": ["write"]}],
    )
    assert engine.visible(billing, who("finance"))
    assert not engine.visible(other, who("finance"))
    assert not engine.visible(make_tool("charge3", access="read", source="billing", tags=("money",)), who("finance"))


def test_name_globs_are_case_sensitive_and_exact() -> None:
    engine = policy(roles={"r": {}}, rules=[{"id": "r", "roles": ["r"], "tools": ["files.read"]}])
    assert engine.visible(READ, who("r"))
    assert not engine.visible(make_tool("Files.read"), who("r"))
    assert not engine.visible(make_tool("files.read2"), who("r"))


def test_principal_grants_in_config_add_roles_by_principal_id() -> None:
    engine = policy(principals={"alice": ["developer"]})
    assert engine.decide(DELETE, who(id="alice"), {}).allowed
    assert not engine.decide(DELETE, who(id="bob"), {}).allowed


def test_visibility_is_cached_per_tool_object_so_a_replaced_tool_is_decided_afresh() -> None:
    engine = policy()
    assert engine.visible(READ, who("readonly"))
    replaced = make_tool("files.read", access="destructive")
    assert not engine.visible(replaced, who("readonly"))


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        pytest.param({"roles": {"admin": {}}}, "built-in role", id="redefine-builtin"),
        pytest.param({"roles": {"a": {"inherits": ["b"]}, "b": {"inherits": ["a"]}}}, "cycle", id="cycle"),
        pytest.param({"roles": {"a": {"inherits": ["ghost"]}}}, "unknown role", id="unknown-parent"),
        pytest.param({"rules": [{"id": "x", "roles": ["ghost"]}]}, "unknown role", id="rule-unknown-role"),
        pytest.param({"principals": {"alice": ["ghost"]}}, "unknown role", id="grant-unknown-role"),
        pytest.param(
            {"rules": [{"id": "x", "roles": ["admin"]}, {"id": "x", "roles": ["admin"]}]}, "twice", id="dup-rule-id"
        ),
        pytest.param(
            {"rules": [{"id": "builtin:admin-all", "roles": ["admin"]}]}, "twice", id="rule-id-shadows-builtin"
        ),
        pytest.param(
            {"rules": [{"id": "x", "roles": ["admin"], "when": {"arg": "a", "matches": "(a)\\1"}}]},
            "pattern",
            id="backreference-pattern",
        ),
    ],
)
def test_inconsistent_policies_are_refused(contents: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy(**contents)
