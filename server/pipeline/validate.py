"""Strict argument validation against the tool's inputSchema (JSON Schema 2020-12).

No coercion: `"1"` is not `1` and `"true"` is not `true`, so policy and upstream see exactly what
was validated. Arguments the schema does not name are rejected unless the schema explicitly allows
extra properties. Messages name the argument path and the rule, never echo large values.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from server.pipeline.chain import CallNext, Step, ToolCall
from tools.errors import InvalidArguments
from tools.model import Tool, ToolOutcome, json_type_name

__all__ = ["ValidateArguments", "argument_problems"]

_MAX_PROBLEMS = 10
_MAX_ERRORS_SCANNED = 50
_MAX_MESSAGE = 160
_EXTRA_KEYWORDS = ("additionalProperties", "patternProperties", "unevaluatedProperties")


class _CompiledSchema:
    __slots__ = ("known", "open", "validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        properties = schema.get("properties")
        self.known = frozenset(properties) if isinstance(properties, Mapping) else frozenset()
        self.open = any(keyword in schema for keyword in _EXTRA_KEYWORDS)


def _describe(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    where = f"arguments{path}"
    if error.validator == "type":
        return f"{where}: expected {error.validator_value}, got {json_type_name(error.instance)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = f"{message[:_MAX_MESSAGE]}… (failed '{error.validator}')"
    return f"{where}: {message}"


class ValidateArguments(Step):
    """Checks the arguments; replaces `call.arguments` with the validated dict."""

    name = "validate"

    def __init__(self) -> None:
        # Keyed by name; the Tool object is kept so a replaced tool recompiles.
        self._compiled: dict[str, tuple[Tool, _CompiledSchema]] = {}

    def compiled(self, tool: Tool) -> _CompiledSchema:
        cached = self._compiled.get(tool.name)
        if cached is not None and cached[0] is tool:
            return cached[1]
        compiled = _CompiledSchema(tool.input_schema)
        self._compiled[tool.name] = (tool, compiled)
        return compiled

    async def call(self, call: ToolCall, call_next: CallNext) -> ToolOutcome:
        tool = call.resolved
        arguments = {} if call.arguments is None else call.arguments
        problems = argument_problems(self.compiled(tool), arguments)
        if problems:
            raise InvalidArguments(tool.name, problems)
        call.arguments = arguments
        return await call_next(call)


def argument_problems(compiled: _CompiledSchema, arguments: object) -> list[str]:
    """Every problem with `arguments`, worst first, at most `_MAX_PROBLEMS`."""
    if not isinstance(arguments, dict):
        return [f"arguments: expected an object, got {json_type_name(arguments)}"]
    problems: list[str] = []
    if not compiled.open:
        unknown = (f"arguments: unknown argument '{key[:64]}'" for key in arguments if key not in compiled.known)
        problems.extend(islice(unknown, _MAX_PROBLEMS))
    # iter_errors is lazy: a million bad array items must not cost a million error objects (and
    # seconds of a blocked event loop), so only the first few are looked at and ordered.
    found = islice(compiled.validator.iter_errors(arguments), _MAX_ERRORS_SCANNED)
    errors = sorted(found, key=lambda e: list(map(str, e.absolute_path)))
    problems.extend(_describe(error) for error in errors)
    return problems[:_MAX_PROBLEMS]
