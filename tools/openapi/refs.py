"""`$ref` resolution: local JSON pointers, `$id`/`$anchor`-named schemas, and refused externals.

A fragment-only reference (`#/components/schemas/Pet`) always resolves in the document that
holds it, whatever `$id` surrounds it: that is what spec authors mean, and it keeps one pointer
per schema. A reference with a URI part first matches the documents already loaded and the
`$id`s inside them (OpenAPI 3.1 lets a schema name itself, as in `$ref: /schemas/pet#name`);
anything else is external and refused unless its file or origin is allowlisted — no fetch and no
file read happen before that check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit
from urllib.request import url2pathname

from tools.errors import SetupError

__all__ = ["RefResolver", "Target", "UnresolvableRef", "escape_token", "join_pointer"]

_MAX_HOPS = 64


class UnresolvableRef(Exception):
    """A `$ref` that cannot be followed; the operation using it is skipped with this reason."""

    def __init__(self, ref: object, problem: str) -> None:
        shown = ref if isinstance(ref, str) else repr(ref)
        super().__init__(f"$ref {shown[:200]!r}: {problem}")
        self.ref = ref
        self.problem = problem
        self.external = problem.startswith("external")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a reference lands: the document, the pointer inside it, and the value there."""

    uri: str
    pointer: str
    value: Any

    @property
    def key(self) -> str:
        return f"{self.uri}#{self.pointer}"


def escape_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def join_pointer(*tokens: str) -> str:
    return "".join("/" + escape_token(token) for token in tokens)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


class RefResolver:
    """Resolves references against the root document and any allowlisted external ones.

    `allowed` holds absolute file paths and http(s) origins (`https://host[:port]`);
    `load_external(uri)` returns the parsed document at an allowed URI.
    """

    def __init__(
        self,
        root: Any,
        root_uri: str,
        *,
        allowed_files: Iterable[Path] = (),
        allowed_origins: Iterable[str] = (),
        load_external: Callable[[str], Any] | None = None,
    ) -> None:
        self.root_uri = root_uri
        self._docs: dict[str, Any] = {root_uri: root}
        self._allowed_files = frozenset(path.resolve() for path in allowed_files)
        self._allowed_origins = frozenset(_origin(origin) for origin in allowed_origins)
        self._load_external = load_external
        # Built on first need: `$id` URI → (document, pointer) and (resource, anchor) → pointer.
        self._ids: dict[str, tuple[str, str]] | None = None
        self._anchors: dict[tuple[str, str], str] = {}

    def resolve(self, ref: object, base_uri: str) -> Target:
        """The target of `ref`, which appeared in the document at `base_uri`.

        Raises:
            UnresolvableRef: not a string, dangling, malformed, or external and not allowed.
        """
        if ref is None:
            raise UnresolvableRef(ref, "is empty (in YAML, quote it: an unquoted '#' starts a comment)")
        if not isinstance(ref, str):
            raise UnresolvableRef(ref, "must be a string")
        uri_part, _, fragment = ref.partition("#")
        if not uri_part:
            return self._follow(base_uri, "", unquote(fragment), ref)
        absolute, _ = urldefrag(urljoin(base_uri, uri_part))
        if absolute in self._docs:
            return self._follow(absolute, "", unquote(fragment), ref)
        found = self._id_index().get(absolute)
        if found is not None:
            doc_uri, resource_pointer = found
            return self._follow(doc_uri, resource_pointer, unquote(fragment), ref, resource=absolute)
        self._load_allowed(absolute, ref)
        return self._follow(absolute, "", unquote(fragment), ref)

    def deref(self, value: Any, base_uri: str) -> tuple[Any, str]:
        """Follow `$ref` chains on a non-schema object (parameter, response…) to the real object."""
        hops = 0
        while isinstance(value, dict) and "$ref" in value:
            hops += 1
            if hops > _MAX_HOPS:
                raise UnresolvableRef(value["$ref"], f"more than {_MAX_HOPS} chained references (a cycle?)")
            target = self.resolve(value["$ref"], base_uri)
            value, base_uri = target.value, target.uri
        return value, base_uri

    def _follow(self, doc_uri: str, start: str, fragment: str, ref: str, *, resource: str | None = None) -> Target:
        if fragment and not fragment.startswith("/"):
            anchored = self._anchor(resource or doc_uri, fragment)
            if anchored is None:
                raise UnresolvableRef(ref, f"no $anchor named {fragment!r}")
            pointer = anchored
        else:
            pointer = start + fragment
        value = self._docs[doc_uri]
        for raw in pointer.split("/")[1:]:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict):
                if token not in value:
                    raise UnresolvableRef(ref, f"nothing at {pointer!r}")
                value = value[token]
            elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
                value = value[int(token)]
            else:
                raise UnresolvableRef(ref, f"nothing at {pointer!r}")
        return Target(uri=doc_uri, pointer=pointer, value=value)

    def _load_allowed(self, absolute: str, ref: str) -> None:
        scheme = urlsplit(absolute).scheme.lower()
        allowed = False
        if scheme == "file":
            allowed = Path(url2pathname(urlsplit(absolute).path)).resolve() in self._allowed_files
        elif scheme in ("http", "https"):
            allowed = _origin(absolute) in self._allowed_origins
        if not allowed or self._load_external is None:
            raise UnresolvableRef(ref, "external reference refused (not in allow_external_refs)")
        try:
            self._docs[absolute] = self._load_external(absolute)
        except SetupError as exc:
            raise UnresolvableRef(ref, f"external document could not be loaded: {exc.message}") from None
        self._ids = None  # the new document may define `$id`s of its own

    def _anchor(self, resource: str, name: str) -> str | None:
        self._id_index()
        return self._anchors.get((resource, name))

    def _id_index(self) -> dict[str, tuple[str, str]]:
        if self._ids is None:
            self._ids = {}
            self._anchors = {}
            for doc_uri, doc in self._docs.items():
                self._index(doc_uri, doc)
        return self._ids

    def _index(self, doc_uri: str, doc: Any) -> None:
        assert self._ids is not None
        stack: list[tuple[Any, str, str]] = [(doc, "", doc_uri)]
        while stack:
            node, pointer, base = stack.pop()
            if isinstance(node, dict):
                own_id = node.get("$id")
                if isinstance(own_id, str) and own_id:
                    base, _ = urldefrag(urljoin(base, own_id))
                    self._ids.setdefault(base, (doc_uri, pointer))
                anchor = node.get("$anchor")
                if isinstance(anchor, str):
                    self._anchors.setdefault((base, anchor), pointer)
                for key, child in node.items():
                    if isinstance(child, dict | list):
                        stack.append((child, f"{pointer}/{escape_token(key)}", base))
            elif isinstance(node, list):
                for index, child in enumerate(node):
                    if isinstance(child, dict | list):
                        stack.append((child, f"{pointer}/{index}", base))
