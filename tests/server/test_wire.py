"""`server.wire`: the one function that decides how an outcome or an error reaches the client."""

from __future__ import annotations

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from server.limits import QuotaExceeded, RateLimited
from server.wire import (
    INTERNAL_ERROR,
    call_result_wire,
    failure_result,
    to_call_result,
    to_mcp_annotations,
    to_protocol_error,
    to_request_error,
    to_wire,
)
from tools.errors import (
    ConfigError,
    InvalidArguments,
    MissingClientCapability,
    ProtocolFault,
    Refusal,
    SetupError,
    ToolCrashed,
    ToolFailure,
    ToolHidden,
    ToolkilnError,
    ToolNameCollision,
    ToolTimeout,
    UnknownTool,
    UpstreamFailure,
)
from tools.model import ToolAnnotations, ToolResult


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(InvalidArguments("t", ["arguments.a: expected integer, got string"]), id="invalid-arguments"),
        pytest.param(ToolTimeout("t", 2.5), id="timeout"),
        pytest.param(ToolCrashed("Tool 't' failed: boom"), id="crashed"),
        pytest.param(UpstreamFailure("upstream answered 502"), id="upstream"),
        pytest.param(ToolFailure("plain failure"), id="tool-failure"),
    ],
)
def test_a_tool_failure_is_an_error_result_carrying_only_its_message(error: ToolFailure) -> None:
    result = to_wire(error)
    assert result.is_error is True
    assert result.content == [types.TextContent(type="text", text=error.message)]
    assert result.structured_content is None


def test_an_unknown_tool_is_a_minus_32602_protocol_error() -> None:
    with pytest.raises(MCPError) as caught:
        to_wire(UnknownTool("nope"))
    assert caught.value.error.code == -32602
    assert caught.value.error.message == "Unknown tool: nope"
    assert caught.value.error.data is None


def test_a_hidden_tool_and_a_missing_one_have_the_same_wire_form() -> None:
    # THREATS R1: the class differs inside the server; nothing of it reaches the client.
    with pytest.raises(MCPError) as hidden:
        to_wire(ToolHidden("admin_reset"))
    with pytest.raises(MCPError) as missing:
        to_wire(UnknownTool("admin_reset"))
    assert hidden.value.error.model_dump_json(by_alias=True) == missing.value.error.model_dump_json(by_alias=True)


def test_a_protocol_fault_keeps_its_own_code() -> None:
    class TooManyRounds(ProtocolFault):
        code = -32600

    with pytest.raises(MCPError) as caught:
        to_wire(TooManyRounds("too many input rounds"))
    assert (caught.value.error.code, caught.value.error.message) == (-32600, "too many input rounds")


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConfigError("/etc/toolkiln/secret.toml", "bad", line=3, key="k"), id="config-error"),
        pytest.param(ToolNameCollision("a", "x", "y"), id="name-collision"),
        pytest.param(SetupError("database /var/lib/toolkiln.db is locked"), id="setup-error"),
        pytest.param(ToolkilnError("root error with detail"), id="bare-root"),
        pytest.param(ValueError("/home/user/.ssh/id_rsa unreadable"), id="foreign-exception"),
        pytest.param(KeyError("sk-live-canary"), id="foreign-key-error"),
    ],
)
def test_anything_else_is_a_bare_internal_error_that_leaks_no_detail(error: Exception) -> None:
    with pytest.raises(MCPError) as caught:
        to_wire(error)
    assert caught.value.error.code == INTERNAL_ERROR == -32603
    assert caught.value.error.message == "Internal error"
    assert caught.value.error.data is None
    assert to_protocol_error(error).error == caught.value.error


def test_to_wire_raises_without_chaining_the_internal_cause() -> None:
    with pytest.raises(MCPError) as caught:
        to_wire(ValueError("internal"))
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_a_tool_result_keeps_its_blocks_structured_content_and_error_flag() -> None:
    blocks = [types.TextContent(type="text", text="a"), types.TextContent(type="text", text="b")]
    result = to_call_result(ToolResult(content=blocks, structured={"n": 1}, is_error=True))
    assert isinstance(result, types.CallToolResult)
    assert result.content == blocks
    assert result.structured_content == {"n": 1}
    assert result.is_error is True


def test_an_input_required_result_passes_through_untouched() -> None:
    asked = types.InputRequiredResult.model_validate(
        {
            "resultType": "input_required",
            "inputRequests": {
                "confirm": {
                    "method": "elicitation/create",
                    "params": {
                        "mode": "form",
                        "message": "Proceed?",
                        "requestedSchema": {"type": "object", "properties": {}},
                    },
                }
            },
        }
    )
    assert to_call_result(asked) is asked


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(ToolResult.text("plain"), id="text"),
        pytest.param(ToolResult.text("no", is_error=True), id="error"),
        pytest.param(
            ToolResult(
                content=[types.TextContent(type="text", text='{"n": [1, 2.5, null]}')],
                structured={"n": [1, 2.5, None], "nested": {"ok": True}},
            ),
            id="structured",
        ),
        pytest.param(
            ToolResult(
                content=[
                    types.ImageContent(type="image", data="aGk=", mime_type="image/png"),
                    types.EmbeddedResource(
                        type="resource",
                        resource=types.BlobResourceContents(uri="https://x.test/a", mime_type="x/y", blob="aGk="),
                    ),
                ]
            ),
            id="media",
        ),
        pytest.param(ToolResult(content=[]), id="empty"),
    ],
)
def test_the_wire_dict_of_a_result_is_exactly_what_the_model_dumps_to(result: ToolResult) -> None:
    model = to_call_result(result)
    assert isinstance(model, types.CallToolResult)
    assert call_result_wire(result) == model.model_dump(by_alias=True, mode="json", exclude_none=True)


def test_the_wire_dict_of_a_result_leaves_an_input_required_result_untouched() -> None:
    asked = types.InputRequiredResult.model_validate(
        {
            "resultType": "input_required",
            "inputRequests": {"confirm": {"method": "roots/list", "params": {}}},
        }
    )
    assert call_result_wire(asked) is asked


def test_default_annotations_are_omitted_and_set_ones_map_to_mcp_hints() -> None:
    assert to_mcp_annotations(ToolAnnotations()) is None
    hints = to_mcp_annotations(
        ToolAnnotations(title="Delete", read_only=False, destructive=True, idempotent=True, open_world=False)
    )
    assert hints == types.ToolAnnotations(
        title="Delete", read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
    )
    dumped = hints.model_dump(by_alias=True, exclude_none=True)
    assert dumped == {
        "title": "Delete",
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": True,
        "openWorldHint": False,
    }


# --- structured details on errors ---------------------------------------------------------------


def test_a_tool_failure_with_structured_details_sends_them_as_structured_content() -> None:
    result = to_wire(ToolFailure("Try again later", structured={"retry_after_s": 3}))
    assert result.is_error is True
    assert result.content == [types.TextContent(type="text", text="Try again later")]
    assert result.structured_content == {"retry_after_s": 3}


def test_a_protocol_fault_with_data_sends_it_as_the_error_data() -> None:
    with pytest.raises(MCPError) as caught:
        to_wire(ProtocolFault("Resource not found", data={"uri": "test://x"}))
    assert caught.value.error == types.ErrorData(code=-32602, message="Resource not found", data={"uri": "test://x"})


def test_a_missing_client_capability_is_minus_32021_naming_the_capabilities() -> None:
    with pytest.raises(MCPError) as caught:
        to_wire(MissingClientCapability("ask", {"sampling": {}, "elicitation": {}}))
    error = caught.value.error
    assert error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY == -32021
    assert error.message == "Tool 'ask' needs client capabilities: elicitation, sampling"
    assert error.data == {"requiredCapabilities": {"sampling": {}, "elicitation": {}}}


def test_rate_limit_and_quota_refusals_reach_the_wire_with_text_and_structured_content() -> None:
    limited = RateLimited(rule="r", scope="principal", limit=2, period_s=60, retry_after_s=29.2, now=0)
    over = QuotaExceeded(period="daily", budget=10, used=8, cost=4, resets_at=86_400, now=0)
    assert isinstance(limited, Refusal)
    assert isinstance(over, Refusal)
    assert (limited.retry_after, over.remaining, over.resets_at) == (30, 2, 86_400)
    for refusal in (limited, over):
        result = to_wire(refusal)
        assert result.is_error is True
        assert result.content == [types.TextContent(type="text", text=refusal.message)]
        assert result.structured_content == refusal.structured
    assert to_wire(limited).structured_content["retry_after_s"] == 30
    assert to_wire(over).structured_content["resets_at"] == "1970-01-02T00:00:00Z"


@pytest.mark.parametrize(
    ("error", "code", "message", "data"),
    [
        pytest.param(ToolTimeout("prompt:p", 2), -32603, "Tool 'prompt:p' timed out after 2 s", None, id="timeout"),
        pytest.param(
            RateLimited(rule="r", scope="global", limit=1, period_s=1, retry_after_s=1, now=0),
            -32603,
            "Rate limit 'r' exceeded (1 calls per 1 s, for all callers). Retry after 1 s.",
            {
                "error": "rate_limited",
                "limit": "r",
                "scope": "global",
                "limit_calls": 1,
                "period_s": 1,
                "retry_after_s": 1,
                "retry_at": "1970-01-01T00:00:01Z",
            },
            id="rate-limited",
        ),
        pytest.param(ProtocolFault("Unknown prompt: p"), -32602, "Unknown prompt: p", None, id="protocol-fault"),
        pytest.param(ValueError("/etc/secret"), -32603, "Internal error", None, id="foreign-exception"),
    ],
)
def test_a_request_without_an_is_error_result_gets_a_json_rpc_error_keeping_the_details(
    error: Exception, code: int, message: str, data: object
) -> None:
    assert to_request_error(error).error == types.ErrorData(code=code, message=message, data=data)


def test_a_failure_result_is_what_to_wire_sends() -> None:
    failure = ToolFailure("no", structured={"why": "because"})
    assert to_call_result(failure_result(failure)) == to_wire(failure)
