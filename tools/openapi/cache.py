"""A conversion cache: the drafts and report of a spec, stored in the server's data directory.

A large spec (GitHub's is 13 MB) costs more to parse and convert than the rest of start-up
together. The result only depends on the spec's bytes, the source's settings and the converter's
code, so it is stored under a key hashing all three: a changed spec, setting or converter version
simply misses. Shared `$defs` bodies are stored once. Files are written atomically and only the
newest entry per source is kept; an unreadable or corrupt entry is ignored (and rebuilt).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, fields
from functools import cache
from pathlib import Path
from typing import Any

import structlog

from tools.model import ToolAnnotations
from tools.openapi.convert import Conversion, ToolDraft
from tools.openapi.plan import BodyField, BodyPlan, OperationPlan, ParamPlan
from tools.openapi.report import ConversionReport, OperationReport
from tools.openapi.settings import OpenApiSourceSettings

__all__ = ["CachedConversion", "ConversionCache"]

log = structlog.get_logger("toolkiln.openapi.cache")
FORMAT = 1
# Every module whose code decides a conversion; editing one invalidates the cache.
_CONVERTER_MODULES = (
    "arguments",
    "auth_schemes",
    "budget",
    "cache",
    "convert",
    "document",
    "filters",
    "loader",
    "naming",
    "operation",
    "plan",
    "refs",
    "report",
    "schema",
    "schema_graph",
    "schema_keywords",
    "schema_merge",
    "settings",
    "swagger2",
    "text",
    "yamlsafe",
)


@cache
def converter_fingerprint() -> str:
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for module in _CONVERTER_MODULES:
        digest.update(module.encode())
        digest.update((here / f"{module}.py").read_bytes())
    return digest.hexdigest()


class CachedConversion:
    __slots__ = ("base_url", "conversion")

    def __init__(self, conversion: Conversion, base_url: str | None) -> None:
        self.conversion = conversion
        self.base_url = base_url


class ConversionCache:
    """Entries in `directory`, one file per source: `<source>-<key>.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def key(spec_sha256: str, settings: OpenApiSourceSettings) -> str:
        material = {
            "format": FORMAT,
            "code": converter_fingerprint(),
            "spec": spec_sha256,
            "settings": settings.model_dump(mode="json", exclude={"watch"}),
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]

    def _path(self, source: str, key: str) -> Path:
        return self.directory / f"{source}-{key}.json"

    def get(self, source: str, key: str) -> CachedConversion | None:
        path = self._path(source, key)
        try:
            data = json.loads(path.read_bytes())
            return _decode(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("openapi_cache_unreadable", source=source, error=f"{type(exc).__name__}: {exc}")
            return None

    def put(self, source: str, key: str, conversion: Conversion, base_url: str | None) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            # Streamed in chunks: no second multi-megabyte copy of the tools while the server starts.
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(_encode(conversion, base_url), out, separators=(",", ":"), ensure_ascii=False)
            target = self._path(source, key)
            os.replace(temp, target)
            for stale in self.directory.glob(f"{source}-*.json"):
                if stale != target and len(stale.name) == len(target.name):
                    with contextlib.suppress(OSError):
                        stale.unlink()
        except OSError as exc:
            log.warning("openapi_cache_not_written", source=source, error=str(exc))


def _encode(conversion: Conversion, base_url: str | None) -> dict[str, Any]:
    shared: dict[str, Any] = {}
    tools = []
    for draft in conversion.drafts:
        tools.append(
            {
                "name": draft.name,
                "title": draft.title,
                "description": draft.description,
                "input": _split(draft.input_schema, shared),
                "output": None if draft.output_schema is None else _split(draft.output_schema, shared),
                "annotations": asdict(draft.annotations),
                "tags": list(draft.tags),
                "plan": asdict(draft.plan),
                "input_bytes": draft.input_bytes,
                "output_bytes": draft.output_bytes,
            }
        )
    report = asdict(conversion.report)
    schemes = dict(conversion.security_schemes)
    return {"base_url": base_url, "defs": shared, "tools": tools, "report": report, "security_schemes": schemes}


def _split(schema: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """The schema without `$defs`, plus the names of shared bodies and any tool-specific ones."""
    top = {k: v for k, v in schema.items() if k != "$defs"}
    names, own = [], {}
    for name, body in schema.get("$defs", {}).items():
        known = shared.setdefault(name, body)
        if known is body:
            names.append(name)
        else:
            own[name] = body  # a degraded tool's private copy
    return {"top": top, "defs": names, "own": own}


def _join(part: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    schema = dict(part["top"])
    defs = {name: shared[name] for name in part["defs"]}
    defs.update(part["own"])
    if defs:
        schema["$defs"] = {name: defs[name] for name in sorted(defs)}
    return schema


def _plan(data: dict[str, Any]) -> OperationPlan:
    body = data.get("body")
    security = data.get("security")
    return OperationPlan(
        **{
            **data,
            "params": tuple(ParamPlan(**p) for p in data["params"]),
            "body": None
            if body is None
            else BodyPlan(**{**body, "fields": tuple(BodyField(**f) for f in body["fields"])}),
            "security": None
            if security is None
            else tuple({name: tuple(scopes) for name, scopes in alt.items()} for alt in security),
        }
    )


def _operation(op: dict[str, Any]) -> OperationReport:
    op["notes"], op["flags"] = tuple(op["notes"]), tuple(op["flags"])
    return OperationReport(**op)


def _decode(data: dict[str, Any]) -> CachedConversion:
    shared = data["defs"]
    drafts = tuple(
        ToolDraft(
            name=tool["name"],
            title=tool["title"],
            description=tool["description"],
            input_schema=_join(tool["input"], shared),
            output_schema=None if tool["output"] is None else _join(tool["output"], shared),
            annotations=ToolAnnotations(**tool["annotations"]),
            tags=tuple(tool["tags"]),
            plan=_plan(tool["plan"]),
            input_bytes=tool["input_bytes"],
            output_bytes=tool["output_bytes"],
        )
        for tool in data["tools"]
    )
    raw = data["report"]
    known = {f.name for f in fields(OperationReport)}
    operations = tuple(_operation({k: v for k, v in op.items() if k in known}) for op in raw["operations"])
    report = ConversionReport(**{**raw, "operations": operations, "problems": tuple(raw["problems"])})
    conversion = Conversion(drafts=drafts, report=report, security_schemes=data["security_schemes"])
    return CachedConversion(conversion, data["base_url"])
