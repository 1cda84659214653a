"""Resources, prompts and endpoints as pipeline subjects, so one policy decides on every path.

The pipeline resolves, authorizes, rate-limits and audits `Tool`s. A resource read, a prompt
render or a resource subscription is the same shape — a named thing, a principal, string
arguments, an executor — so each catalog entry gets a `Subject`: a `Tool` whose name says what
it stands for and which no registry lists. Entry points hand the subject to `Pipeline.run`, and
every step applies unchanged (THREATS R5):

    resource:<uri>             a fixed resource; no arguments
    resource:<uri template>    a template; its `{variables}` are the arguments (policy conditions
                               can test them, the audit records them)
    prompt:<name>              a prompt; its declared arguments (strings)
    endpoint:<name>            an HTTP endpoint outside MCP (`endpoint:metrics`), decided only

Tool names cannot contain `:`, so a subject never collides with a tool, and policy rules reach
subjects with the globs they already use for tools (`resource:*`, `prompt:*`, `*`). Subjects
are read-only (the built-in roles' `read` access) and cost nothing against quotas; an entry's
`tags` carry over, so a source can mark one `admin`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from tools.catalog import Prompt, Resource, ResourceContents, ResourceTemplate
from tools.model import CallContext, Tool, ToolAnnotations, ToolOutcome, ToolResult

__all__ = [
    "ACTION",
    "METRICS_ENDPOINT",
    "SUBSCRIBE",
    "CatalogSubjects",
    "Subject",
    "endpoint_subject",
    "prompt_messages",
    "resource_contents",
]

# `CallContext.extras` key: what a call on a resource subject does; absent means "read".
ACTION = "catalog.action"
SUBSCRIBE = "subscribe"

_READ = ToolAnnotations(read_only=True)
_NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

Subscriber = Callable[[str, CallContext], None]


@dataclass(frozen=True, slots=True)
class Subject(Tool):
    """A `Tool` standing for something that is not one; its name is `kind:identifier`."""

    def __post_init__(self) -> None:
        # Tool-name rules (64 characters of `[A-Za-z0-9_.-]`) are for what hosts display as tools;
        # a subject's name holds a URI and is never listed as a tool.
        if ":" not in self.name:
            raise ValueError(f"subject name {self.name!r} has no 'kind:' prefix")


def endpoint_subject(name: str) -> Subject:
    """An HTTP endpoint's subject: tagged `admin`, so only admin (or a rule naming it) may use it."""

    async def never(_: Mapping[str, Any], __: CallContext) -> ToolOutcome:
        raise RuntimeError(f"endpoint:{name} is decided, never called")

    return Subject(
        name=f"endpoint:{name}",
        description=f"the /{name} endpoint",
        input_schema=_NO_ARGUMENTS,
        executor=never,
        source="toolkiln",
        annotations=_READ,
        cost=0.0,
        tags=("admin",),
    )


METRICS_ENDPOINT = endpoint_subject("metrics")


def resource_contents(outcome: ToolResult) -> list[ResourceContents]:
    """The contents a resource subject's result carries (the inverse of its executor's packing)."""
    return [block.resource for block in outcome.content if isinstance(block, types.EmbeddedResource)]


def prompt_messages(outcome: ToolResult) -> list[types.PromptMessage]:
    """The messages a prompt subject's result carries: content blocks, with their roles alongside."""
    roles = (outcome.structured or {}).get("roles", [])
    return [types.PromptMessage(role=role, content=block) for role, block in zip(roles, outcome.content, strict=True)]


class CatalogSubjects:
    """One subject per catalog entry, built once and kept while the entry object is unchanged.

    Kept, because the policy, validation and limits caches key on the subject object: a fresh
    subject per request would miss them every time.
    """

    def __init__(self, *, subscribe: Subscriber) -> None:
        self._subscribe = subscribe
        self._subjects: dict[str, tuple[object, Subject]] = {}

    def resource(self, entry: Resource | ResourceTemplate) -> Subject:
        key = entry.uri if isinstance(entry, Resource) else entry.uri_template
        return self._cached(f"resource:{key}", entry, lambda: self._resource(entry, f"resource:{key}"))

    def prompt(self, prompt: Prompt) -> Subject:
        return self._cached(f"prompt:{prompt.name}", prompt, lambda: self._prompt(prompt))

    def _cached(self, name: str, entry: object, build: Callable[[], Subject]) -> Subject:
        cached = self._subjects.get(name)
        if cached is not None and cached[0] is entry:
            return cached[1]
        subject = build()
        self._subjects[name] = (entry, subject)
        return subject

    def _resource(self, entry: Resource | ResourceTemplate, name: str) -> Subject:
        subscribe = self._subscribe

        async def run(arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
            variables = {key: str(value) for key, value in arguments.items()}
            uri = entry.uri if isinstance(entry, Resource) else entry.expand(variables)
            if context.extras.get(ACTION) == SUBSCRIBE:
                subscribe(uri, context)
                return ToolResult(content=[])
            outcome = await entry.read(uri, variables, context)
            if isinstance(outcome, types.InputRequiredResult):
                return outcome
            return ToolResult(content=[types.EmbeddedResource(type="resource", resource=item) for item in outcome])

        if isinstance(entry, Resource):
            schema = _NO_ARGUMENTS
        else:
            schema = _strings(entry.variables, required=entry.variables, extra=False)
        return Subject(
            name=name,
            description=entry.description,
            input_schema=schema,
            executor=run,
            source=entry.source,
            annotations=_READ,
            title=entry.title,
            cost=0.0,
            tags=entry.tags,
        )

    def _prompt(self, prompt: Prompt) -> Subject:
        async def run(arguments: Mapping[str, Any], context: CallContext) -> ToolOutcome:
            outcome = await prompt.render({key: str(value) for key, value in arguments.items()}, context)
            if isinstance(outcome, types.InputRequiredResult):
                return outcome
            messages = list(outcome)
            return ToolResult(
                content=[message.content for message in messages],
                structured={"roles": [message.role for message in messages]},
            )

        names = [argument.name for argument in prompt.arguments]
        required = [argument.name for argument in prompt.arguments if argument.required]
        return Subject(
            name=f"prompt:{prompt.name}",
            description=prompt.description,
            # Undeclared arguments stay allowed (as strings): hosts pass what the user typed.
            input_schema=_strings(names, required=required, extra=True),
            executor=run,
            source=prompt.source,
            annotations=_READ,
            title=prompt.title,
            cost=0.0,
            tags=prompt.tags,
        )


def _strings(names: Sequence[str], *, required: Sequence[str], extra: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": list(required),
        "additionalProperties": {"type": "string"} if extra else False,
    }
