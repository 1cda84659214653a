"""The audit's two pipeline steps, and the recorder they share.

Why two steps. A call can end before it ever reaches an executor: unknown or hidden tool (resolve),
invalid arguments (validate), denied (authorize), rate limited or over quota (limits). Those must
be audited too, so `AuditCalls` sits right after logging and metrics, *outside* resolve, and sees
every outcome, raised or returned. But the intent of a call that does run must be committed before
the executor starts, with the final validated arguments, after every check has passed; so
`AuditIntent` sits last before the deadline and the executor. A call that was refused early gets
its intent and outcome written together, in one transaction, by `AuditCalls`.

Both writes go through the group-commit writer and are awaited: the intent before the executor
runs, the outcome before the result returns. If either cannot be committed the call fails closed
(`LedgerUnavailable`): no executor run without an intent, no result without an outcome.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import anyio
import mcp_types as types

from server.audit import notes
from server.audit.log import AuditLog
from server.audit.owner import current_owner
from server.audit.redact import Redactor
from server.audit.status import classify
from server.audit.writer import Batch, GroupCommitWriter, LedgerUnavailable, Op
from server.pipeline.chain import CallNext, Step, ToolCall
from tools.errors import ToolkilnError
from tools.model import ToolOutcome, ToolResult

__all__ = ["AuditCalls", "AuditIntent", "AuditRecorder", "CallsInFlight", "whole_if_integral"]


class AuditRecorder:
    """Builds intent and outcome records from a `ToolCall` and appends them through the writer."""

    def __init__(self, writer: GroupCommitWriter, log: AuditLog, redactor: Redactor) -> None:
        self.writer = writer
        self.log = log
        self.redactor = redactor

    def _tool_name(self, call: ToolCall) -> str:
        if call.tool is not None:
            return call.tool.name
        name = call.name if isinstance(call.name, str) else repr(call.name)
        return self.redactor.text(name, limit=128)

    def _intent_fields(self, call: ToolCall) -> dict[str, Any]:
        principal = call.context.principal
        tool = call.tool
        request_id = call.context.request_id
        return {
            "source": None if tool is None else tool.source,
            "roles": list(principal.roles),
            "transport": principal.transport,
            "request_id": None if request_id is None else self.redactor.text(str(request_id), limit=64),
            "arguments": self.redactor.arguments(call.arguments, None if tool is None else tool.input_schema),
        }

    async def intent(self, call: ToolCall) -> int:
        """Commit the intent record; returns its seq.

        Raises:
            LedgerUnavailable: the record could not be committed.
        """
        call_id: str = call.notes[notes.CALL_ID]
        principal = call.context.principal.id
        tool = call.resolved
        fields = self._intent_fields(call)
        owner = current_owner()
        log = self.log

        def op(conn: sqlite3.Connection, batch: Batch) -> int:
            seq = log.append(
                conn, batch, kind="intent", call_id=call_id, principal=principal, tool=tool.name, status=None,
                fields=fields,
            )  # fmt: skip
            log.open_call(
                conn, call_id=call_id, owner=owner, seq=seq, principal=principal, tool=tool.name, source=tool.source
            )
            return seq

        return await self._run(op)

    async def outcome(self, call: ToolCall, outcome: object, started: float) -> None:
        """Commit the outcome (and the intent too, for a call refused before `AuditIntent`).

        Never interrupted: a cancelled caller still waits for the commit, so no result or error
        leaves the call before its outcome is durable.

        Raises:
            LedgerUnavailable: the record could not be committed.
        """
        op = self._outcome_op(call, outcome, started)
        try:
            done, _ = self.writer.run_now(op)
        except LedgerUnavailable:
            raise
        except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc
        if not done:
            with anyio.CancelScope(shield=True):
                await self._run(op)

    def _outcome_op(self, call: ToolCall, outcome: object, started: float) -> Op[int]:
        call_id: str = call.notes[notes.CALL_ID]
        principal = call.context.principal.id
        tool = self._tool_name(call)
        status = classify(call.notes, outcome)
        fields: dict[str, Any] = {
            "source": None if call.tool is None else call.tool.source,
            "rule": call.notes.get(notes.POLICY_RULE),
            "limit": call.notes.get(notes.LIMIT),
            "cost": whole_if_integral(float(call.notes.get(notes.COST, 0) or 0)),
            "latency_us": int((time.perf_counter() - started) * 1_000_000),
            "result_bytes": _result_bytes(outcome),
            "idempotency": call.notes.get(notes.IDEMPOTENCY),
            "shadow": call.notes.get(notes.SHADOW),
            "error": type(outcome).__name__ if isinstance(outcome, BaseException) else None,
        }
        intent = None if notes.INTENT_SEQ in call.notes else self._intent_fields(call)
        log = self.log

        def op(conn: sqlite3.Connection, batch: Batch) -> int:
            # An intent whose commit the caller stopped waiting for (cancelled) may still have
            # landed: then it is open, and must not be written twice.
            if intent is not None and not log.close_call(conn, call_id):
                log.append(
                    conn, batch, kind="intent", call_id=call_id, principal=principal, tool=tool, status=None,
                    fields=intent,
                )  # fmt: skip
            elif intent is None:
                log.close_call_later(batch, call_id)
            return log.append(
                conn, batch, kind="outcome", call_id=call_id, principal=principal, tool=tool, status=status,
                fields=fields,
            )  # fmt: skip

        return op

    async def _run(self, op: Any) -> int:
        try:
            seq: int = await self.writer.run(op)
        except LedgerUnavailable:
            raise
        except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
            raise LedgerUnavailable(type(exc).__name__) from exc
        return seq


class CallsInFlight(Step):
    """Outermost ledger step: counts the calls in flight, which tells the writer how to commit.

    One call at a time commits inline; concurrent calls share the writer thread's batches.
    """

    name = "calls_in_flight"

    def __init__(self, writer: GroupCommitWriter) -> None:
        self._writer = writer

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        writer = self._writer
        writer.calls_in_flight += 1
        try:
            outcome = await call_next(call)
            # A call whose writes all commit inline never yields, so under load calls would run
            # strictly one after another and never share a batch. One turn of the event loop
            # while this call still counts lets waiting calls start: if any does, calls overlap
            # and their writes go to the writer thread, whose batches scale with concurrency.
            # While other calls are in flight they overlap already, and the turn would only cost.
            if writer.calls_in_flight == 1:
                await asyncio.sleep(0)
            return outcome
        finally:
            writer.calls_in_flight -= 1


class AuditCalls(Step):
    """Outer step: gives the call its id and records how every call ended."""

    name = "audit"

    def __init__(self, recorder: AuditRecorder) -> None:
        self._recorder = recorder

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        notes.call_id(call.notes)
        started = time.perf_counter()
        try:
            result = await call_next(call)
        except BaseException as exc:
            try:
                await self._recorder.outcome(call, exc, started)
            except LedgerUnavailable as failure:
                if isinstance(exc, ToolkilnError):
                    raise failure from exc
            raise
        await self._recorder.outcome(call, result, started)
        return result


class AuditIntent(Step):
    """Inner step: commits the intent right before the executor, then lets the call run."""

    name = "audit_intent"

    def __init__(self, recorder: AuditRecorder | None) -> None:
        self._recorder = recorder

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        if self._recorder is not None:
            notes.call_id(call.notes)
            call.notes[notes.INTENT_SEQ] = await self._recorder.intent(call)
        call.notes[notes.EXECUTED] = True
        return await call_next(call)


def whole_if_integral(value: float) -> float | int:
    """Costs are written as integers when they are whole (the common case keeps hashing on the fast path)."""
    return int(value) if value.is_integer() else value


def _result_bytes(outcome: object) -> int:
    """About how many bytes the result carries: its content blocks and its structured content.

    A tool returning structured content also returns it as JSON in a text block (the OpenAPI
    tools return the upstream's own body): that block's size stands for the structured content
    too, instead of serializing a result of many kilobytes once more just to measure it.
    """
    if not isinstance(outcome, ToolResult):
        return 0
    size = 0
    as_json = 0
    for block in outcome.content:
        if isinstance(block, types.TextContent):
            text = block.text
            length = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
            size += length
            if not as_json and text.lstrip()[:1] == "{":
                as_json = length
        else:
            size += len(block.model_dump_json(by_alias=True, exclude_none=True))
    if outcome.structured is not None:
        size += as_json or len(repr(outcome.structured))
    return size
