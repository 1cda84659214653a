"""OpenAPI schemas (2.0, 3.0, 3.1) as JSON Schema 2020-12, with references kept as `$defs`.

Each referenced schema is converted once per document into a `Def` (a `$defs` entry named after
its pointer) and shared by every tool that reaches it; a tool carries only the transitive closure
of the definitions it uses. References are never inlined, so recursion terminates and schemas stay
small. Conversion is iterative across references (a 500-long `$ref` chain costs no stack) and
bounded in inline nesting depth.

Dialect differences handled here: `nullable`/`x-nullable` → `"null"` in `type` (or an `anyOf`),
boolean `exclusiveMinimum`/`exclusiveMaximum` → numeric, 2.0 `type: file` → a binary string,
tuple-form `items` → `prefixItems`. `allOf` of object schemas is merged into one object (a lone
`allOf: [$ref]` becomes the `$ref`); `oneOf` becomes `anyOf`, because OpenAPI `oneOf` branches
routinely overlap (open objects), so exclusive matching would reject valid data, and the
`discriminator` (not a JSON Schema keyword) is dropped. Keywords that are not JSON Schema (`xml`,
`example`, `x-*`) and identifiers that would re-base references (`$id`, `$anchor`, `$schema`) are
dropped; patterns Python cannot compile are dropped with a note (they could never be checked).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tools.openapi import schema_keywords as kw
from tools.openapi.naming import fit, sanitize
from tools.openapi.refs import RefResolver, UnresolvableRef
from tools.openapi.schema_merge import merge_all_of
from tools.openapi.text import clean_text

__all__ = ["DEFS_PREFIX", "NO_DEFS", "Converted", "Def", "DefClosure", "SchemaConverter", "json_size"]

DEFS_PREFIX = "#/$defs/"
MAX_INLINE_DEPTH = 48
MAX_MERGE_DEPTH = 8


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON, as it goes on the wire."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@dataclass(slots=True)
class _Context:
    # Reference counts: a reference merged away (inlined `allOf` branch) is counted back down.
    refs: dict[str, int] = field(default_factory=dict)
    shallow: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Def:
    """One `$defs` entry, shared by every tool that reaches it."""

    key: str
    name: str
    schema: Any = None
    refs: frozenset[str] = frozenset()
    shallow: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()  # fatal: a tool reaching this definition is not built
    notes: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()
    state: int = 0  # 0 pending, 1 converting, 2 done
    checked: bool = False
    depth: int = 0  # longest chain of same-instance references starting here
    source: Any = None
    base: str = ""
    _size: int = -1
    _name_size: int = -1

    @property
    def size(self) -> int:
        if self._size < 0:
            self._size = json_size(self.schema)
        return self._size

    @property
    def entry_size(self) -> int:
        """Bytes of this definition as a `$defs` member: `"name":{…}`."""
        if self._name_size < 0:
            self._name_size = json_size(self.name)
        return self._name_size + 1 + self.size


@dataclass(frozen=True, slots=True)
class DefClosure:
    """The definitions a schema reaches (sorted by name) and what they bring to a tool as a whole.

    Operations of one document reach the same sets again and again (Stripe's 800 schemas reach
    142 distinct ones, about 120 definitions each), so each set is gathered once.
    """

    defs: tuple[Def, ...] = ()
    entry_bytes: int = 0  # their `"name":{…}` members, summed
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()


NO_DEFS = DefClosure()


@dataclass(frozen=True, slots=True)
class Converted:
    """A converted top-level schema and what it depends on."""

    schema: Any
    refs: frozenset[str]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    flags: frozenset[str] = frozenset()


class SchemaConverter:
    """Converts the schemas of one document; definitions are cached across all its tools."""

    def __init__(self, resolver: RefResolver, *, description_limit: int = 1024) -> None:
        self.resolver = resolver
        self.description_limit = description_limit
        self.defs: dict[str, Def] = {}  # by name
        self._by_key: dict[str, Def] = {}
        self._pending: list[Def] = []
        self._stack: list[_Context] = []
        self._merge_depth = 0
        self._memo: dict[tuple[int, str], tuple[Any, Converted]] = {}
        self._closures: dict[frozenset[str], DefClosure] = {}

    # ---- public ----------------------------------------------------------------------------

    def convert(self, raw: Any, base: str) -> Converted:
        """`raw` as JSON Schema 2020-12; its references become `$defs` names (see `closure`).

        The result is shared (a parameter `$ref`-ed by 500 operations is converted once): treat it
        as immutable.
        """
        memo_key = (id(raw), base)
        memo = self._memo.get(memo_key)
        if memo is not None and memo[0] is raw:
            return memo[1]
        ctx = _Context()
        self._stack.append(ctx)
        try:
            schema = self._node(raw, base, 0, True)
        finally:
            self._stack.pop()
        self._drain()
        converted = Converted(
            schema=schema,
            refs=_live(ctx.refs),
            problems=tuple(ctx.problems),
            notes=tuple(ctx.notes),
            flags=frozenset(ctx.flags),
        )
        if isinstance(raw, dict):
            # The raw object is kept with the result, so its id cannot be reused by another.
            self._memo[memo_key] = (raw, converted)
        return converted

    def closure(self, names: Iterable[str]) -> DefClosure:
        """Every definition reachable from `names`, sorted by name.

        Kept per set of names: once gathered, every member is converted and checked for loops,
        so neither its schema nor its size changes again.
        """
        key = frozenset(names)
        known = self._closures.get(key)
        if known is None:
            defs = self._reach(key)
            known = self._closures[key] = DefClosure(
                defs=defs,
                entry_bytes=sum(d.entry_size for d in defs),
                problems=tuple(p for d in defs for p in d.problems),
                notes=tuple(n for d in defs for n in d.notes),
                flags=frozenset(f for d in defs for f in d.flags),
            )
        return known

    def _reach(self, names: Iterable[str]) -> tuple[Def, ...]:
        from tools.openapi.schema_graph import break_shallow_cycles

        seen: dict[str, Def] = {}
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            definition = self.defs[name]
            seen[name] = definition
            todo.extend(definition.refs)
        unchecked = [d for d in seen.values() if not d.checked]
        if unchecked:
            break_shallow_cycles(unchecked, self.defs)
        return tuple(seen[name] for name in sorted(seen))

    def target(self, schema: Any) -> Any:
        """Follow a top-level `{"$ref": "#/$defs/X"}` (chain) to the definition's schema."""
        hops = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and hops < 16:
            ref = schema["$ref"]
            if not ref.startswith(DEFS_PREFIX):
                break
            definition = self.defs.get(ref[len(DEFS_PREFIX) :])
            if definition is None:
                break
            schema = definition.schema
            hops += 1
        return schema

    # ---- references --------------------------------------------------------------------------

    def _ref(self, ref: object, base: str, shallow: bool) -> str | None:
        ctx = self._stack[-1]
        try:
            target = self.resolver.resolve(ref, base)
        except UnresolvableRef as exc:
            # A refused external reference stops the tool (it must not be served half-checked);
            # a dangling or malformed local one only loosens that spot, and the report says so.
            if exc.external:
                ctx.problems.append(str(exc))
            else:
                ctx.notes.append(f"{exc}; that value is not checked")
            return None
        definition = self._by_key.get(target.key)
        if definition is None:
            definition = Def(key=target.key, name=self._name_for(target.key, target.pointer))
            definition.source, definition.base = target.value, target.uri
            self._by_key[target.key] = definition
            self.defs[definition.name] = definition
            self._pending.append(definition)
        _count(ctx.refs, definition.name, 1)
        if shallow:
            _count(ctx.shallow, definition.name, 1)
        return definition.name

    def _name_for(self, key: str, pointer: str) -> str:
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        if (len(tokens) == 3 and tokens[0] == "components") or (len(tokens) == 2 and tokens[0] == "definitions"):
            wanted = tokens[-1]
        else:
            wanted = "_".join(t for t in tokens if t not in ("paths", "content", "schema", "components")) or "root"
        name = fit(sanitize(wanted, fallback="schema"), 64, original=key)
        if name in self.defs:
            tag = "_" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:8]
            name = fit(name, 64 - len(tag)) + tag
        return name

    def _drain(self) -> None:
        while self._pending:
            definition = self._pending.pop()
            if definition.state == 0:
                self._convert_def(definition)

    def _convert_def(self, definition: Def) -> None:
        definition.state = 1
        ctx = _Context()
        self._stack.append(ctx)
        try:
            schema = self._node(definition.source, definition.base, 0, True)
        finally:
            self._stack.pop()
        definition.schema = schema
        definition.refs = _live(ctx.refs)
        definition.shallow = _live(ctx.shallow)
        definition.problems = tuple(ctx.problems)
        definition.notes = tuple(ctx.notes)
        definition.flags = frozenset(ctx.flags)
        definition.state = 2
        definition.source = None  # the raw document may be freed once conversion is over

    def body_for_merge(self, name: str) -> Def | None:
        """The converted definition `name`, converting it now if needed; None inside a cycle."""
        definition = self.defs.get(name)
        if definition is None or definition.state == 1 or self._merge_depth >= MAX_MERGE_DEPTH:
            return None
        if definition.state == 0:
            self._merge_depth += 1
            try:
                self._convert_def(definition)
            finally:
                self._merge_depth -= 1
        return definition

    # ---- nodes -------------------------------------------------------------------------------

    def _node(self, raw: Any, base: str, depth: int, shallow: bool) -> Any:
        if isinstance(raw, bool):
            return raw
        ctx = self._stack[-1]
        if not isinstance(raw, dict):
            ctx.notes.append(f"a schema that is not an object ({type(raw).__name__}) accepts any value")
            return {}
        if depth > MAX_INLINE_DEPTH:
            ctx.notes.append(f"schema nesting beyond {MAX_INLINE_DEPTH} levels accepts any value")
            return {}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            kind = kw.KIND.get(key)
            if kind is None:
                continue  # not JSON Schema (example, xml, x-*, nullable…) or re-basing ($id…)
            if kind == kw.TYPE:
                if value.__class__ is str and value in kw.TYPES:
                    out["type"] = value
                else:
                    self._type(out, value)
            elif kind == kw.TEXT:
                text = clean_text(value, self.description_limit, single_line=key == "title")
                if text.text:
                    out[key] = text.text
                    if text.flags:
                        ctx.flags.update(text.flags)
            elif kind == kw.PROPERTIES:
                if isinstance(value, dict):
                    out["properties"] = {str(k): self._node(v, base, depth + 1, False) for k, v in value.items()}
            elif kind == kw.REF:
                name = self._ref(value, base, shallow)
                if name is None:
                    return {}
                out["$ref"] = DEFS_PREFIX + name
            elif kind == kw.ITEMS:
                if isinstance(value, list):
                    out["prefixItems"] = [self._node(v, base, depth + 1, False) for v in value]
                else:
                    out["items"] = self._node(value, base, depth + 1, False)
            elif kind == kw.STRING:
                if isinstance(value, str):
                    out[key] = value
            elif kind == kw.REQUIRED:
                if isinstance(value, list):
                    names = list(dict.fromkeys(v for v in value if isinstance(v, str)))
                    if names:
                        out["required"] = names
            elif kind == kw.ENUM:
                if isinstance(value, list) and value:
                    out["enum"] = value
            elif kind == kw.MANY:
                if isinstance(value, list) and value:
                    target = "anyOf" if key == "oneOf" else key
                    converted = [self._node(v, base, depth + 1, shallow) for v in value]
                    out[target] = [*out.get(target, []), *converted]
            elif kind == kw.BOOLEAN:
                if isinstance(value, bool):
                    out[key] = value
            elif kind == kw.ANY_VALUE:
                out[key] = value
            elif kind == kw.NUMBER:
                if kw.is_number(value) and (key != "multipleOf" or value > 0):
                    out[key] = value
            elif kind == kw.COUNT:
                if kw.is_number(value) and value >= 0 and value == int(value):
                    out[key] = int(value)
            elif kind == kw.PATTERN:
                if isinstance(value, str) and kw.compiles(value):
                    out["pattern"] = value
                else:
                    ctx.notes.append(f"pattern {str(value)[:60]!r} is not a usable regular expression; not checked")
            elif kind == kw.CHILD:
                out[key] = self._node(value, base, depth + 1, False)
            elif kind == kw.SAME:
                out[key] = self._node(value, base, depth + 1, shallow)
            elif kind == kw.PREFIX_ITEMS:
                if isinstance(value, list):
                    out["prefixItems"] = [self._node(v, base, depth + 1, False) for v in value]
            elif kind == kw.PATTERN_PROPERTIES:
                if isinstance(value, dict):
                    out[key] = {k: self._node(v, base, depth + 1, False) for k, v in value.items() if kw.compiles(k)}
            elif kind == kw.DEPENDENT_SCHEMAS:
                if isinstance(value, dict):
                    out[key] = {str(k): self._node(v, base, depth + 1, shallow) for k, v in value.items()}
            elif kind == kw.DEPENDENT_REQUIRED and isinstance(value, dict):
                out[key] = {
                    str(k): list(dict.fromkeys(x for x in v if isinstance(x, str)))
                    for k, v in value.items()
                    if isinstance(v, list)
                }
        self._legacy(out, raw)
        if "properties" in out:
            hoisted = [k for k, v in raw["properties"].items() if isinstance(v, dict) and v.get("required") is True]
            if hoisted:
                out["required"] = list(dict.fromkeys([*out.get("required", []), *hoisted]))
        if "allOf" in out:
            out = merge_all_of(self, out, shallow)
        if raw.get("nullable") is True or raw.get("x-nullable") is True:
            out = kw.nullable(out)
        return out

    def inherit(self, definition: Def, shallow: bool) -> None:
        """Record that `definition` was merged inline: its dependencies replace the reference."""
        ctx = self._stack[-1]
        _count(ctx.refs, definition.name, -1)
        for name in definition.refs:
            _count(ctx.refs, name, 1)
        if shallow:
            _count(ctx.shallow, definition.name, -1)
            for name in definition.shallow:
                _count(ctx.shallow, name, 1)
        ctx.problems.extend(definition.problems)
        ctx.notes.extend(definition.notes)
        ctx.flags.update(definition.flags)

    def _type(self, out: dict[str, Any], value: Any) -> None:
        if value == "file":
            out["type"] = "string"
            out.setdefault("format", "binary")
        elif isinstance(value, str) and value in kw.TYPES:
            out["type"] = value
        elif isinstance(value, list):
            kinds = list(dict.fromkeys(v for v in value if isinstance(v, str) and v in kw.TYPES))
            if kinds:
                out["type"] = kinds if len(kinds) > 1 else kinds[0]
        else:
            self._stack[-1].notes.append(f"unknown type {str(value)[:40]!r} accepts any value")

    @staticmethod
    def _legacy(out: dict[str, Any], raw: dict[str, Any]) -> None:
        # OpenAPI 3.0 / Swagger 2.0: `exclusiveMinimum: true` qualifies `minimum`.
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if raw.get(flag) is True and bound in out:
                out[flag] = out.pop(bound)


def _count(counts: dict[str, int], name: str, delta: int) -> None:
    counts[name] = counts.get(name, 0) + delta


def _live(counts: dict[str, int]) -> frozenset[str]:
    return frozenset(name for name, count in counts.items() if count > 0)
