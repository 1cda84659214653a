"""Approval through the MCP host: the human at the host's UI answers an elicitation.

Handshake era (≤ 2025-11-25): an `elicitation/create` request on the call's own stream, answered
before the tool returns. 2026-07-28: no server-initiated requests, so the tool answers with an
`InputRequiredResult` carrying the question, and the client retries the call with the answer in
`inputResponses`. Either way the question shows what would be pinned (tools, egress, credential
handles, file count, digest) and the answer is bound to that digest: if a file changes between
question and answer, the approval is refused and must be asked again.

An elicitation is only as trustworthy as the host that renders it; an operator who does not want
to rely on hosts sets `[modules] approve_by_elicitation = false` and approves with the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from modules.approval import Pins
from modules.lifecycle import ModuleLifecycle
from modules.manifest import ModuleManifest, ModuleRef
from tools.model import CallContext, ToolOutcome, ToolResult

__all__ = ["approval_question", "request_approval"]

_KEY = "approve"
_SCHEMA = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Approve this module version", "default": False}},
    "required": ["approve"],
}


def approval_question(ref: ModuleRef, manifest: ModuleManifest, pins: Pins) -> str:
    """What the human is asked: everything the approval would allow, in a few lines."""
    tools = "\n".join(f"  - {tool.name}: {tool.description.splitlines()[0][:120]}" for tool in manifest.tools)
    egress = ", ".join(manifest.egress) or "none"
    credentials = ", ".join(manifest.credentials) or "none"
    return (
        f"Approve module {ref} to run as tools on this server?\n"
        f"{manifest.description[:300]}\n"
        f"Tools:\n{tools}\n"
        f"May reach: {egress}\n"
        f"Credentials injected: {credentials}\n"
        f"Files pinned: {len(pins.files)} (digest {pins.digest[:16]})"
    )


def _request(context: CallContext) -> ServerRequestContext[Any, Any] | None:
    request = context.request
    return request if isinstance(request, ServerRequestContext) else None


def _approved(answer: Any) -> bool:
    try:
        result = types.ElicitResult.model_validate(answer, by_name=False)
    except ValidationError:
        return False
    return result.action == "accept" and (result.content or {}).get(_KEY) is True


def _cli(ref: ModuleRef, why: str) -> ToolResult:
    return ToolResult.text(f"{why}; approve it with `toolkiln modules approve {ref}`", is_error=True)


async def request_approval(lifecycle: ModuleLifecycle, ref: ModuleRef, context: CallContext) -> ToolOutcome:
    """Ask the host's human to approve `ref`; approve it if they do.

    Raises:
        ModuleStateError: not validated, or changed since validation or since the question.
    """
    pins = await lifecycle.pins_for(ref)
    record = await lifecycle.record(ref)
    assert record.manifest is not None
    manifest = ModuleManifest.stored(record.manifest)
    request = _request(context)
    if not lifecycle.settings.approve_by_elicitation:
        return _cli(ref, "approval by elicitation is turned off")
    if request is None:
        return _cli(ref, "this call did not come from an MCP host that can ask a human")
    actor = f"{context.principal.id} (elicitation)"
    message = approval_question(ref, manifest, pins)
    if request.protocol_version in MODERN_PROTOCOL_VERSIONS:
        params: Mapping[str, Any] = request.params or {}
        responses = params.get("inputResponses")
        state = params.get("requestState")
        if isinstance(responses, Mapping) and _KEY in responses:
            if not _approved(responses[_KEY]):
                return ToolResult.text(f"{ref} was not approved", is_error=True)
            await lifecycle.approve(ref, actor=actor, expect_digest=state if isinstance(state, str) else "")
            return ToolResult.text(f"{ref} approved (digest {pins.digest[:16]}); activate it to serve its tools")
        question = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=_SCHEMA))
        return types.InputRequiredResult(input_requests={_KEY: question}, request_state=pins.digest)
    declared = request.session.client_capabilities
    if declared is None or declared.elicitation is None:
        return _cli(ref, "the host did not declare the elicitation capability")
    question = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=_SCHEMA))
    answer = await request.session.send_request(
        question, types.ElicitResult, metadata=ServerMessageMetadata(related_request_id=request.request_id)
    )
    if not _approved(answer.model_dump(by_alias=True)):
        return ToolResult.text(f"{ref} was not approved ({answer.action})", is_error=True)
    await lifecycle.approve(ref, actor=actor, expect_digest=pins.digest)
    return ToolResult.text(f"{ref} approved (digest {pins.digest[:16]}); activate it to serve its tools")
