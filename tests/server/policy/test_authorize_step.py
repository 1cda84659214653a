"""The authorize step inside the real pipeline: hidden equals unknown, final arguments decide."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from server.config import Settings
from server.pipeline import Step, ToolCall, build_pipeline
from server.pipeline.chain import CallNext, Pipeline
from server.pipeline.execute import execute
from server.pipeline.resolve import ResolveTool
from server.pipeline.validate import ValidateArguments
from server.policy import Authorize, PolicyHolder, PolicySettings
from server.runtime import Runtime
from server.wire import to_wire
from tests.server.policy.support import make_tool
from tools.errors import ToolHidden, ToolkilnError, UnknownTool
from tools.model import CallContext, Principal, Tool, ToolOutcome, ToolResult
from tools.registry import ToolRegistry

pytestmark = pytest.mark.anyio


class Notes(Step):
    """Records what the steps before it decided, as the audit step after authorize will."""

    name = "notes"

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        self.seen.append(dict(call.notes))
        return await call_next(call)


def build(tools: list[Tool], **policy: Any) -> tuple[Pipeline, Notes]:
    registry = ToolRegistry()
    registry.replace_source("demo", tools)
    holder = PolicyHolder(PolicySettings.model_validate(policy))
    notes = Notes()
    pipeline = build_pipeline(
        registry, call_timeout_s=5, authorize=Authorize(holder, registry), after_validation=[notes]
    )
    return pipeline, notes


def as_wire_error(error: ToolkilnError) -> dict[str, Any]:
    with pytest.raises(MCPError) as caught:
        to_wire(error)
    return caught.value.error.model_dump()


async def call(pipeline: Pipeline, name: Any, arguments: Any, *roles: str) -> ToolOutcome:
    return await pipeline.call_tool(name, arguments, CallContext(principal=Principal("p", roles)))


READ = make_tool("files.read", access="read")
DELETE = make_tool("files.delete", access="destructive")


async def test_a_hidden_tool_and_a_missing_tool_fail_with_identical_bytes() -> None:  # THREATS R1
    pipeline, _ = build([READ, DELETE])
    assert [tool.name for tool in pipeline.list_tools(Principal("p", ("readonly",)))] == ["files.read"]
    with pytest.raises(ToolHidden) as hidden:
        await call(pipeline, "files.delete", {}, "readonly")
    with pytest.raises(UnknownTool) as missing:
        await call(pipeline, "files.nothing", {}, "readonly")
    renamed = as_wire_error(missing.value)
    renamed["message"] = renamed["message"].replace("files.nothing", "files.delete")
    assert as_wire_error(hidden.value) == renamed


async def test_a_hidden_tool_is_refused_before_its_arguments_are_examined() -> None:  # THREATS R1
    pipeline, _ = build([READ, DELETE])
    with pytest.raises(ToolHidden):
        await call(pipeline, "files.delete", {"no_such_argument": 1}, "readonly")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("FILES.DELETE", id="upper-case"),
        pytest.param("Files.delete", id="capitalised"),
        pytest.param("files.deIete", id="confusable-capital-i"),
        pytest.param("files.de\u200blete", id="zero-width-space"),
        pytest.param("files.delete ", id="trailing-space"),
        pytest.param(" files.delete", id="leading-space"),
        pytest.param("files.delete\u0000", id="nul"),
        pytest.param("files.dеlete", id="cyrillic-e"),
    ],
)
async def test_name_tricks_never_reach_a_tool_the_admin_may_call(name: str) -> None:  # THREATS R2
    pipeline, notes = build([READ, DELETE])
    with pytest.raises(UnknownTool):
        await call(pipeline, name, {}, "admin")
    assert notes.seen == []


async def test_two_names_for_one_upstream_operation_get_the_stricter_grant() -> None:  # THREATS R2
    get_user = make_tool("users.get", access="read", meta={"upstream_operation": "crm DELETE /users/{id}"})
    delete_user = make_tool("users.delete", access="destructive", meta={"upstream_operation": "crm DELETE /users/{id}"})
    pipeline, _ = build([get_user, delete_user, READ])
    readonly = Principal("p", ("readonly",))
    assert [tool.name for tool in pipeline.list_tools(readonly)] == ["files.read"]
    with pytest.raises(ToolHidden):
        await call(pipeline, "users.get", {}, "readonly")
    assert (await call(pipeline, "users.get", {}, "developer")) is not None


async def test_a_schema_default_cannot_slip_a_forbidden_value_past_a_deny() -> None:  # THREATS R3
    deploy = make_tool("deploy", access="destructive", properties={"env": {"type": "string", "default": "prod"}})
    pipeline, notes = build(
        [deploy],
        rules=[{"id": "no-prod", "effect": "deny", "roles": ["developer"], "when": {"arg": "env", "equals": "prod"}}],
    )
    with pytest.raises(ToolHidden):
        await call(pipeline, "deploy", {}, "developer")
    result = await call(pipeline, "deploy", {"env": "staging"}, "developer")
    assert isinstance(result, ToolResult)
    assert result.structured == {"arguments": {"env": "staging"}}
    assert notes.seen == [{"policy_rule": "builtin:developer-destructive", "policy_decision": "allow"}]


async def test_the_executor_receives_exactly_the_arguments_the_policy_decided_on() -> None:  # THREATS R3
    deploy = make_tool(
        "deploy",
        access="destructive",
        properties={"env": {"type": "string", "default": "staging"}, "force": {"type": "boolean"}},
    )
    pipeline, _ = build([deploy])
    result = await call(pipeline, "deploy", {"force": True}, "developer")
    assert isinstance(result, ToolResult)
    assert result.structured == {"arguments": {"env": "staging", "force": True}}


async def test_a_string_one_does_not_satisfy_an_allow_on_number_one() -> None:  # THREATS R3 / A2
    tool = make_tool("tier", access="destructive", properties={"level": {}})
    pipeline, _ = build(
        [tool], roles={"ops": {}}, rules=[{"id": "level-1", "roles": ["ops"], "when": {"arg": "level", "equals": 1}}]
    )
    assert isinstance(await call(pipeline, "tier", {"level": 1}, "ops"), ToolResult)
    for value in ("1", True, [1], None):
        with pytest.raises(ToolHidden):
            await call(pipeline, "tier", {"level": value}, "ops")


async def test_a_denied_call_records_the_deciding_rule_before_failing() -> None:
    observed: dict[str, Any] = {}

    class Outer(Step):
        async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
            try:
                return await call_next(call)
            finally:
                observed.update(call.notes)

    registry = ToolRegistry()
    registry.replace_source("demo", [DELETE])
    resolve = ResolveTool()
    authorize = Authorize(PolicyHolder(PolicySettings()), registry)
    pipeline = Pipeline(registry, [resolve, Outer(), ValidateArguments(), authorize], execute)
    resolve.attach(pipeline)
    # The agent cannot see the tool at all, so resolve hides it; a conditional deny is needed
    # for the authorize step itself to be the one refusing.
    with pytest.raises(ToolHidden):
        await pipeline.call_tool("files.delete", {}, CallContext(principal=Principal("p", ("agent",))))
    assert observed == {}
    rule = {"id": "need-reason", "effect": "deny", "roles": ["admin"], "when": {"arg": "why", "equals": ""}}
    holder = PolicyHolder(PolicySettings.model_validate({"rules": [rule]}))
    resolve = ResolveTool()
    pipeline = Pipeline(registry, [resolve, Outer(), ValidateArguments(), Authorize(holder, registry)], execute)
    resolve.attach(pipeline)
    with pytest.raises(ToolHidden):
        await pipeline.call_tool("files.delete", {}, CallContext(principal=Principal("p", ("admin",))))
    assert observed == {"policy_rule": "need-reason", "policy_decision": "deny"}


async def test_every_runtime_pipeline_authorizes_right_after_validation() -> None:  # THREATS R5
    runtime = Runtime(Settings())
    names = [step.name for step in runtime.pipeline.steps]
    assert names.index("authorize") == names.index("validate") + 1
