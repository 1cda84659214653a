"""Strict argument validation against the tool's inputSchema (JSON Schema 2020-12).

No coercion: `"1"` is not `1` and `"true"` is not `true`, so policy and upstream see exactly what
was validated. Arguments the schema does not name are rejected unless the schema explicitly allows
extra properties. Messages name the argument path and the rule, never echo large values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


# Keywords that never change whether a value is valid.
_ANNOTATIONS = frozenset({"title", "description", "examples", "default", "deprecated", "readOnly", "writeOnly"})
_FLAT_OBJECT = frozenset({"type", "properties", "required", "additionalProperties"}) | _ANNOTATIONS
_FLAT_PROPERTY = frozenset({"type"}) | _ANNOTATIONS


def _is_integer(value: object) -> bool:
    # JSON Schema: 7.0 is an integer too.
    return type(value) is int or (type(value) is float and isinstance(value, float) and value.is_integer())


# Exact types: anything else (a subclass) takes the full validator's way.
_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": lambda value: type(value) is str,
    "integer": _is_integer,
    "number": lambda value: type(value) is int or type(value) is float,
    "boolean": lambda value: type(value) is bool,
    "null": lambda value: value is None,
}


class _FlatSchema:
    """A quick yes for the commonest schema: an object of named scalar arguments, types only.

    Most OpenAPI parameters are just that (`{"type": "integer"}`); walking jsonschema's keyword
    machinery for them costs more than the rest of validation. `valid` only ever answers yes
    when the full validator would: any doubt (an unknown argument, a wrong type) goes to it, so
    the messages stay its own.
    """

    __slots__ = ("checks", "required")

    def __init__(self, checks: dict[str, tuple[Callable[[object], bool], ...]], required: tuple[str, ...]) -> None:
        self.checks = checks
        self.required = required

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> _FlatSchema | None:
        if not _FLAT_OBJECT.issuperset(schema) or schema.get("type") != "object":
            return None
        if schema.get("additionalProperties", False) is not False:
            return None
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            return None
        if not all(isinstance(name, str) for name in required):
            return None
        checks: dict[str, tuple[Callable[[object], bool], ...]] = {}
        for name, sub in properties.items():
            if not isinstance(sub, Mapping) or not _FLAT_PROPERTY.issuperset(sub):
                return None
            types = sub.get("type")
            names = types if isinstance(types, list) else [types]
            accepted = tuple(_TYPE_CHECKS.get(t) if isinstance(t, str) else None for t in names)
            if not accepted or None in accepted:
                return None
            checks[name] = tuple(check for check in accepted if check is not None)
        return cls(checks, tuple(required))

    def valid(self, arguments: dict[str, Any]) -> bool:
        for name in self.required:
            if name not in arguments:
                return False
        checks = self.checks
        for name, value in arguments.items():
            accepted = checks.get(name)
            if accepted is None or not any(check(value) for check in accepted):
                return False
        return True


class _CompiledSchema:
    __slots__ = ("flat", "known", "open", "validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        properties = schema.get("properties")
        self.known = frozenset(properties) if isinstance(properties, Mapping) else frozenset()
        self.open = any(keyword in schema for keyword in _EXTRA_KEYWORDS)
        self.flat = _FlatSchema.of(schema)


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
    if compiled.flat is not None and compiled.flat.valid(arguments):
        return []
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
