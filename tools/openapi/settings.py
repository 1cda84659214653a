"""The configuration of one OpenAPI source: a `[[sources]]` table in toolkiln.toml.

Everything that bounds the work a spec can cause (bytes, operations, YAML expansion, schema size)
has a default here, so an untrusted document can never make the server unbounded by omission.
The upstream fields (timeouts, caps, redirects, private hosts) are read by the HTTP executor.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.openapi.auth_settings import AuthHandle

__all__ = ["MIB", "OpenApiSourceSettings", "OperationFilter", "derive_source_name"]

MIB = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OperationFilter(_Frozen):
    """Selects operations. Every non-empty criterion must match; an empty filter matches nothing.

    `paths` are shell-style globs over the path template (`/repos/*/issues*`); `methods` are
    case-insensitive; `tags` match any of the operation's tags.
    """

    operation_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        upper = tuple(m.upper() for m in value)
        unknown = sorted(set(upper) - _METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP method(s): {', '.join(unknown)}")
        return upper

    @property
    def empty(self) -> bool:
        return not (self.operation_ids or self.tags or self.paths or self.methods)


class OpenApiSourceSettings(_Frozen):
    """One OpenAPI document served as tools."""

    kind: Literal["openapi"] = "openapi"
    # The source's id (registry source name, log field). Derived from the spec's file name if unset.
    name: str | None = None
    # A file path (relative to the config file's folder) or an http(s) URL.
    spec: str
    # The upstream's base URL. Defaults to the spec's first `servers` entry (variables at their
    # defaults); required when that is relative and the spec came from a file.
    base_url: str | None = None
    # Prepended to every tool name of this source (counted in the 64-character limit).
    prefix: str = ""
    include: OperationFilter | None = None
    exclude: OperationFilter = OperationFilter()
    # Rebuild the source when the spec file changes (files only; `toolkiln reload` works always).
    watch: bool = True

    # Bounds on the document.
    max_spec_bytes: int = Field(default=32 * MIB, ge=1024)
    max_operations: int = Field(default=10_000, ge=1)
    # YAML anchors/aliases: the number of nodes the document expands to, counting each alias use.
    max_yaml_nodes: int = Field(default=5_000_000, ge=1000)
    # Per-tool budget on inputSchema + outputSchema bytes; past it the tool degrades (see report).
    max_tool_schema_bytes: int = Field(default=256 * 1024, ge=1024)
    # Past this many bytes of `tools/list` for the whole source, the largest tools lose their
    # outputSchema first. Default: 8× the spec's own size, and at least 1 MiB.
    max_list_bytes: int | None = Field(default=None, ge=64 * 1024)
    max_description_chars: int = Field(default=1024, ge=64, le=65536)
    # Descriptions inside schemas (arguments, properties): the first sentences are what a model uses.
    max_schema_description_chars: int = Field(default=400, ge=32, le=65536)
    # External `$ref`s are refused unless their file (path) or host is listed here.
    allow_external_refs: tuple[str, ...] = ()
    fetch_timeout_s: float = Field(default=30.0, gt=0, le=600)

    # Upstream requests (the HTTP executor).
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    read_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    total_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_response_bytes: int = Field(default=10 * MIB, ge=1024)
    follow_redirects: bool = False
    # Hosts or addresses allowed even though they are private/loopback (e.g. "127.0.0.1").
    allow_private_hosts: tuple[str, ...] = ()
    # Security scheme name → the stored credential it uses (`[sources.auth.<scheme>]`).
    auth: dict[str, AuthHandle] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.fullmatch(value):
            raise ValueError("must be 1-48 characters of letters, digits, '_', '.', '-', starting alphanumeric")
        return value

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", value):
            raise ValueError("must be at most 32 characters of letters, digits, '_', '.', '-'")
        return value

    @field_validator("spec")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file or an http(s) URL")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/?#\s]+", value, re.I):
            raise ValueError("must be an absolute http(s) URL")
        return value

    @property
    def source_name(self) -> str:
        return self.name or derive_source_name(self.spec)

    @property
    def is_url(self) -> bool:
        return self.spec.lower().startswith(("http://", "https://"))


def derive_source_name(spec: str) -> str:
    """A stable source id from a spec location: `specs/github-api.json` → `github-api`."""
    tail = spec.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    stem = Path(tail).stem if "." in tail else tail
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")[:48]
    return cleaned or "openapi"
