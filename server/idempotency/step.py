"""The idempotency step: a repeated mutating call with the same key gets the stored result.

The key comes from the request's `_meta` (`meta_key`) or from an argument (`argument`), both named
in config. Only tools not annotated read-only take part: a read is safe to repeat. Successful
results are stored (up to `max_result_bytes`) and committed with the call's audit outcome; a
failed call releases its claim so a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from pydantic import TypeAdapter

from server.audit import notes
from server.audit.canonical import canonical_json
from server.config import IdempotencySettings
from server.idempotency.store import IdempotencyStore
from server.limits.errors import ActionableFailure
from server.pipeline.chain import CallNext, Step, ToolCall
from tools.errors import ToolFailure
from tools.model import ToolOutcome, ToolResult

__all__ = ["IdempotencyConflict", "IdempotencyInProgress", "IdempotencyStep", "dump_result", "load_result"]

_MAX_KEY_CHARS = 255
_CONTENT = TypeAdapter(types.ContentBlock)


class IdempotencyConflict(ToolFailure):
    """The key was already used for this tool with different arguments."""

    audit_status = "invalid"


class IdempotencyInProgress(ActionableFailure):
    """Another call with the same key is running; its result is there to fetch in a moment."""

    audit_status = "in_progress"

    def __init__(self) -> None:
        super().__init__(
            "A call with this idempotency key is still in progress. Retry after 1 s to get its result.",
            {"error": "idempotency_in_progress", "retry_after_s": 1},
        )


def dump_result(result: ToolResult) -> str:
    return json.dumps(
        {
            "content": [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content],
            "structured": result.structured,
            "is_error": result.is_error,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def load_result(text: str) -> ToolResult:
    data = json.loads(text)
    return ToolResult(
        content=[_CONTENT.validate_python(block) for block in data["content"]],
        structured=data.get("structured"),
        is_error=bool(data.get("is_error")),
    )


class IdempotencyStep(Step):
    name = "idempotency"

    def __init__(self, store: IdempotencyStore, settings: IdempotencySettings) -> None:
        self._store = store
        self._settings = settings

    def key_of(self, call: ToolCall) -> str | None:
        """The call's idempotency key, from the configured argument first, else `_meta`.

        Raises:
            IdempotencyConflict: a key is present but not a non-empty string of at most 255 chars.
        """
        key: Any = None
        argument = self._settings.argument
        if argument is not None:
            key = call.checked_arguments.get(argument)
        if key is None:
            meta = getattr(call.context.request, "meta", None) or call.context.extras.get("meta")
            if isinstance(meta, Mapping):
                key = meta.get(self._settings.meta_key)
        if key is None:
            return None
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY_CHARS:
            raise IdempotencyConflict("An idempotency key must be a string of 1 to 255 characters")
        return key

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        tool = call.resolved
        if tool.annotations.read_only:
            return await call_next(call)
        key = self.key_of(call)
        if key is None:
            return await call_next(call)
        principal = call.context.principal.id
        scope = _digest(principal, tool.name, key)
        fingerprint = _fingerprint(call.checked_arguments, self._settings.argument)
        call_id = notes.call_id(call.notes)
        ttl = self._settings.ttl_s
        try:
            claim = await self._store.claim(scope, fingerprint, call_id, ttl)
        except BaseException:
            # Cancelled while waiting: a claim that lands anyway must not block retries.
            self._store.release(scope, call_id)
            raise
        if claim.kind == "replay" and claim.result is not None:
            call.notes[notes.IDEMPOTENCY] = "replayed"
            return load_result(claim.result)
        if claim.kind == "conflict":
            raise IdempotencyConflict(
                f"The idempotency key was already used for tool '{tool.name}' with different arguments"
            )
        if claim.kind == "in_progress":
            raise IdempotencyInProgress()
        call.notes[notes.IDEMPOTENCY] = "resumed" if claim.kind == "resumed" else "claimed"
        stored = False
        try:
            result = await call_next(call)
            if isinstance(result, ToolResult) and not result.is_error:
                text = dump_result(result)
                if len(text) <= self._settings.max_result_bytes:
                    self._store.complete(scope, call_id, text, ttl)
                    stored = True
            return result
        finally:
            if not stored:
                self._store.release(scope, call_id)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _fingerprint(arguments: Mapping[str, Any], key_argument: str | None) -> str:
    payload = {name: value for name, value in arguments.items() if name != key_argument}
    try:
        body = canonical_json(payload)
    except (TypeError, ValueError):
        body = json.dumps(payload, sort_keys=True, default=repr).encode("utf-8", "surrogatepass")
    return hashlib.sha256(body).hexdigest()
