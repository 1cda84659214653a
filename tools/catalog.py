"""The versioned catalog of resources and prompts, the sibling of the tool registry.

Sources own disjoint sets of resource URIs, URI templates and prompt names and replace them
atomically, exactly as they do tools. Each change bumps `version` and tells the listeners
which list changed; the server turns that into `notifications/{resources,prompts}/list_changed`
(and `notifications/resources/updated` for a changed resource).

Readers and renderers get the same `CallContext` a tool executor gets, so they can ask the
client for input (2026-07-28 `InputRequiredResult`) the same way. The server serves them through
the same call pipeline as tools (`server.pipeline.subjects`), so one policy decides who sees and
reads what; `tags` feed that policy as a tool's tags do.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types
import structlog

from tools.errors import ToolNameCollision
from tools.model import CallContext

__all__ = [
    "Catalog",
    "CatalogChange",
    "CatalogListener",
    "Prompt",
    "PromptArgument",
    "PromptOutcome",
    "PromptRenderer",
    "Resource",
    "ResourceContents",
    "ResourceOutcome",
    "ResourceReader",
    "ResourceTemplate",
]

log = structlog.get_logger("toolkiln.catalog")

ResourceContents = types.TextResourceContents | types.BlobResourceContents
ResourceOutcome = Sequence[ResourceContents] | types.InputRequiredResult
PromptOutcome = Sequence[types.PromptMessage] | types.InputRequiredResult

ResourceReader = Callable[[str, Mapping[str, str], CallContext], Awaitable[ResourceOutcome]]
PromptRenderer = Callable[[Mapping[str, str], CallContext], Awaitable[PromptOutcome]]

# RFC 6570 level 1 only: `{name}` stands for one non-empty path segment.
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Resource:
    """A readable resource at a fixed URI."""

    uri: str
    name: str
    description: str
    read: ResourceReader
    source: str
    mime_type: str | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceTemplate:
    """A family of resources, `{name}` variables matching one path segment each.

    `completions` offers candidate values per variable for `completion/complete`.
    """

    uri_template: str
    name: str
    description: str
    read: ResourceReader
    source: str
    mime_type: str | None = None
    title: str | None = None
    completions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pieces: list[str] = []
        last = 0
        for match in _VARIABLE.finditer(self.uri_template):
            pieces.append(re.escape(self.uri_template[last : match.start()]))
            pieces.append(f"(?P<{match.group(1)}>[^/?#]+)")
            last = match.end()
        pieces.append(re.escape(self.uri_template[last:]))
        object.__setattr__(self, "_pattern", re.compile("".join(pieces)))

    def match(self, uri: str) -> dict[str, str] | None:
        """The variables if `uri` is an instance of this template, else `None`."""
        found = self._pattern.fullmatch(uri)
        return None if found is None else found.groupdict()

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(match.group(1) for match in _VARIABLE.finditer(self.uri_template))

    def expand(self, variables: Mapping[str, str]) -> str:
        """The URI for these variable values (the inverse of `match`).

        Raises:
            KeyError: a variable of the template has no value.
        """
        return _VARIABLE.sub(lambda match: variables[match.group(1)], self.uri_template)


@dataclass(frozen=True, slots=True)
class PromptArgument:
    name: str
    description: str = ""
    required: bool = False
    completions: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt template; `render` turns checked arguments into messages."""

    name: str
    description: str
    render: PromptRenderer
    source: str
    arguments: tuple[PromptArgument, ...] = ()
    title: str | None = None
    tags: tuple[str, ...] = ()

    def missing_arguments(self, given: Mapping[str, str]) -> list[str]:
        return [arg.name for arg in self.arguments if arg.required and arg.name not in given]


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """What changed: a list (`resources`, `prompts`) or one resource's content (`updated`)."""

    kind: Literal["resources", "prompts", "updated"]
    version: int
    uri: str | None = None


CatalogListener = Callable[[CatalogChange], None]


@dataclass
class _Entries:
    resources: dict[str, Resource] = field(default_factory=dict)
    templates: dict[str, ResourceTemplate] = field(default_factory=dict)
    prompts: dict[str, Prompt] = field(default_factory=dict)


class Catalog:
    """Resources, resource templates and prompts, grouped by source, with change listeners."""

    def __init__(self) -> None:
        self._by_source: dict[str, _Entries] = {}
        self._version = 0
        self._listeners: dict[object, CatalogListener] = {}
        self._lock = threading.Lock()
        self._resources: tuple[Resource, ...] = ()
        self._templates: tuple[ResourceTemplate, ...] = ()
        self._prompts: dict[str, Prompt] = {}

    @property
    def version(self) -> int:
        return self._version

    def resources(self) -> tuple[Resource, ...]:
        return self._resources

    def templates(self) -> tuple[ResourceTemplate, ...]:
        return self._templates

    def prompts(self) -> tuple[Prompt, ...]:
        return tuple(self._prompts.values())

    def prompt(self, name: str) -> Prompt | None:
        return self._prompts.get(name)

    def find_resource(self, uri: str) -> tuple[Resource | ResourceTemplate, dict[str, str]] | None:
        """The fixed resource at `uri`, else the first template matching it (with its variables)."""
        for resource in self._resources:
            if resource.uri == uri:
                return resource, {}
        for template in self._templates:
            variables = template.match(uri)
            if variables is not None:
                return template, variables
        return None

    def replace_source(
        self,
        source: str,
        *,
        resources: Iterable[Resource] = (),
        templates: Iterable[ResourceTemplate] = (),
        prompts: Iterable[Prompt] = (),
    ) -> int:
        """Make these the complete resources, templates and prompts of `source`.

        Raises:
            ToolNameCollision: a URI, template or prompt name is owned by another source or
                repeated; nothing changes in that case.
        """
        new = _Entries(
            resources=_keyed(source, resources, lambda r: r.uri),
            templates=_keyed(source, templates, lambda t: t.uri_template),
            prompts=_keyed(source, prompts, lambda p: p.name),
        )
        with self._lock:
            for other, entries in self._by_source.items():
                if other == source:
                    continue
                for mine, theirs in (
                    (new.resources, entries.resources),
                    (new.templates, entries.templates),
                    (new.prompts, entries.prompts),
                ):
                    clash = next((key for key in mine if key in theirs), None)
                    if clash is not None:
                        raise ToolNameCollision(clash, other, source)
            old = self._by_source.get(source, _Entries())
            changed: list[Literal["resources", "prompts"]] = []
            if old.resources != new.resources or old.templates != new.templates:
                changed.append("resources")
            if old.prompts != new.prompts:
                changed.append("prompts")
            if not changed:
                return self._version
            if new.resources or new.templates or new.prompts:
                self._by_source[source] = new
            else:
                self._by_source.pop(source, None)
            self._rebuild()
            self._version += 1
            version = self._version
        log.info("catalog_changed", source=source, changed=changed, version=version)
        for kind in changed:
            self._notify(CatalogChange(kind=kind, version=version))
        return version

    def add_prompt(self, prompt: Prompt) -> int:
        entries = self._by_source.get(prompt.source, _Entries())
        rest = [p for p in entries.prompts.values() if p.name != prompt.name]
        return self._replace_prompts(prompt.source, [*rest, prompt])

    def remove_prompt(self, name: str) -> int:
        prompt = self._prompts.get(name)
        if prompt is None:
            return self._version
        entries = self._by_source[prompt.source]
        return self._replace_prompts(prompt.source, [p for p in entries.prompts.values() if p.name != name])

    def resource_updated(self, uri: str) -> None:
        """Tell listeners that the content behind `uri` changed (no list change)."""
        self._notify(CatalogChange(kind="updated", version=self._version, uri=uri))

    def subscribe(self, listener: CatalogListener) -> Callable[[], None]:
        """Call `listener(change)` after every change; returns an idempotent unsubscribe."""
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def _replace_prompts(self, source: str, prompts: list[Prompt]) -> int:
        entries = self._by_source.get(source, _Entries())
        return self.replace_source(
            source,
            resources=entries.resources.values(),
            templates=entries.templates.values(),
            prompts=prompts,
        )

    def _rebuild(self) -> None:
        entries = list(self._by_source.values())
        self._resources = tuple(r for e in entries for r in e.resources.values())
        self._templates = tuple(t for e in entries for t in e.templates.values())
        self._prompts = {name: p for e in entries for name, p in e.prompts.items()}

    def _notify(self, change: CatalogChange) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(change)
            except Exception:  # one broken listener must not stop the others
                log.exception("catalog_listener_failed")


def _keyed(source: str, items: Iterable[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if item.source != source:
            raise ValueError(f"{key(item)!r} belongs to {item.source!r}, not {source!r}")
        name = key(item)
        if name in out:
            raise ToolNameCollision(name, source, source)
        out[name] = item
    return out
