"""A module's manifest (`manifest.toml`) and its place on disk.

A module lives in `<data_dir>/modules/<name>/<version>/`: the manifest, its code (the entry file
and anything beside it) and its own tests (`tests/test_*.py`, run in the sandbox at validation).
The manifest is untrusted input: it is parsed strictly (unknown keys are errors, no coercion) and
a bad one is rejected with every problem named at once, so whoever wrote it (a person or a model)
can fix them all in one pass.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modules.credentials_manifest import ModuleCredential, credential_problems
from tools.errors import SetupError
from tools.model import TOOL_NAME_PATTERN

__all__ = [
    "MANIFEST_NAME",
    "MODULE_NAME_PATTERN",
    "VERSION_PATTERN",
    "ManifestInvalid",
    "ModuleLimits",
    "ModuleManifest",
    "ModuleRef",
    "ModuleTool",
    "ModuleToolAnnotations",
    "load_manifest",
    "module_dir",
    "modules_root",
    "parse_egress",
]

MANIFEST_NAME = "manifest.toml"
# Names and versions become directory names and the source name `module:<name>`: no separators,
# no dots at the start, nothing a path could be made of.
MODULE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
VERSION_PATTERN = r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})(-[0-9A-Za-z]{1,20})?$"
_MAX_MANIFEST_BYTES = 256 * 1024
_MAX_SCHEMA_BYTES = 64 * 1024
_EGRESS = re.compile(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):([0-9]{1,5})$")


class ManifestInvalid(SetupError):
    """The manifest is missing, unreadable or invalid; `problems` names every one."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{path}: invalid module manifest ({len(problems)} problem(s)):\n{listed}")
        self.path = path
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ModuleToolAnnotations(_Strict):
    title: str | None = Field(default=None, max_length=200)
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None


def _schema_problem(schema: dict[str, Any], *, require_object: bool) -> str | None:
    if len(json.dumps(schema)) > _MAX_SCHEMA_BYTES:
        return f"is larger than {_MAX_SCHEMA_BYTES} bytes"
    if require_object and schema.get("type") != "object":
        return "must be a JSON Schema with type 'object'"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"is not a valid JSON Schema (2020-12): {exc.message[:200]}"
    return None


class ModuleTool(_Strict):
    """One tool the module declares; the worker must implement exactly these."""

    name: str = Field(pattern=TOOL_NAME_PATTERN.pattern)
    description: str = Field(min_length=1, max_length=4000)
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: ModuleToolAnnotations = ModuleToolAnnotations()

    @field_validator("input_schema")
    @classmethod
    def _input_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = _schema_problem(value, require_object=True)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("output_schema")
    @classmethod
    def _output_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = None if value is None else _schema_problem(value, require_object=True)
        if problem:
            raise ValueError(problem)
        return value

    def definition(self) -> dict[str, Any]:
        """The tool as a client sees it: what the approval pins with a hash."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "annotations": self.annotations.model_dump(),
        }


class ModuleLimits(_Strict):
    """Resources one worker may use (the sandbox's `Limits`); absent keys take the sandbox defaults."""

    cpu_s: int | None = Field(default=None, ge=1, le=600)
    memory_mb: int | None = Field(default=None, ge=32, le=4096)
    processes: int | None = Field(default=None, ge=1, le=256)
    open_files: int | None = Field(default=None, ge=8, le=1024)
    file_size_mb: int | None = Field(default=None, ge=1, le=256)
    call_timeout_s: float | None = Field(default=None, gt=0, le=300, allow_inf_nan=False)
    start_timeout_s: float | None = Field(default=None, gt=0, le=60, allow_inf_nan=False)
    result_kb: int | None = Field(default=None, ge=1, le=16 * 1024)
    log_kb_per_call: int | None = Field(default=None, ge=1, le=1024)

    def given(self) -> dict[str, Any]:
        """Only the limits the manifest sets."""
        return {key: value for key, value in self.model_dump().items() if value is not None}


def parse_egress(entry: str) -> tuple[str, str, int]:
    """`scheme://host:port` → its parts; nothing else (no path, no user, no wildcard).

    Raises:
        ValueError: the entry is not exactly `http[s]://host:port` with a port in 1..65535.
    """
    match = _EGRESS.fullmatch(entry)
    if match is None:
        raise ValueError(f"egress entry {entry!r} is not scheme://host:port (http or https, explicit port)")
    port = int(match.group(3))
    if not 1 <= port <= 65535:
        raise ValueError(f"egress entry {entry!r}: port {port} is out of range")
    return match.group(1), match.group(2).lower(), port


def _relative_file(value: str, what: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{what} must be a relative path inside the module directory")
    return value


class ModuleManifest(_Strict):
    """`manifest.toml`: what a module is, what it declares and what it may reach."""

    # Stored as JSON by validation and read back by `stored`: the TOML key names both ways.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, serialize_by_alias=True)

    name: str = Field(pattern=MODULE_NAME_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    description: str = Field(min_length=1, max_length=4000)
    # The file the worker imports; its tools are functions named like the declared tools.
    entry: str = "module.py"
    tools: tuple[ModuleTool, ...] = Field(min_length=1, max_length=64)
    egress: tuple[str, ...] = Field(default=(), max_length=32)
    # `[[credentials]]`: what the broker injects for this module, and where; the module never
    # sees the secret. `credentials` (the property) is the tuple of their handles.
    declared_credentials: tuple[ModuleCredential, ...] = Field(default=(), max_length=16, alias="credentials")
    limits: ModuleLimits = ModuleLimits()

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        _relative_file(value, "entry")
        if not value.endswith(".py"):
            raise ValueError("entry must be a .py file")
        return value

    @field_validator("egress")
    @classmethod
    def _egress(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        for entry in value:
            try:
                parse_egress(entry)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _unique_tools(self) -> ModuleManifest:
        names = [tool.name for tool in self.tools]
        repeated = sorted({name for name in names if names.count(name) > 1})
        problems = [f"tool names repeat: {', '.join(repeated)}"] if repeated else []
        problems += credential_problems(self.declared_credentials, self.egress)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def credentials(self) -> tuple[str, ...]:
        """The handles of the declared credentials."""
        return tuple(credential.handle for credential in self.declared_credentials)

    @classmethod
    def stored(cls, data: dict[str, Any]) -> ModuleManifest:
        """A manifest the registry stored (already validated once, as JSON)."""
        return cls.model_validate_json(json.dumps(data), strict=True)

    @property
    def ref(self) -> ModuleRef:
        return ModuleRef(self.name, self.version)

    @property
    def source(self) -> str:
        """The registry source that owns this module's tools."""
        return f"module:{self.name}"


class ModuleRef(tuple[str, str]):
    """`NAME@VERSION`, parsed and checked so it can be used as a path."""

    def __new__(cls, name: str, version: str) -> ModuleRef:
        if re.fullmatch(MODULE_NAME_PATTERN, name) is None:
            raise ValueError(f"not a module name: {name!r} (lowercase letters, digits, _; at most 40)")
        if re.fullmatch(VERSION_PATTERN, version) is None:
            raise ValueError(f"not a module version: {version!r} (MAJOR.MINOR.PATCH[-tag])")
        return super().__new__(cls, (name, version))

    @classmethod
    def parse(cls, text: str) -> ModuleRef:
        """
        Raises:
            ValueError: not `NAME@VERSION` with a valid name and version.
        """
        name, sep, version = text.partition("@")
        if not sep:
            raise ValueError(f"expected NAME@VERSION, got {text!r}")
        return cls(name, version)

    @property
    def name(self) -> str:
        return self[0]

    @property
    def version(self) -> str:
        return self[1]

    def __str__(self) -> str:
        return f"{self[0]}@{self[1]}"


def modules_root(data_dir: Path) -> Path:
    return data_dir / "modules"


def module_dir(data_dir: Path, ref: ModuleRef) -> Path:
    return modules_root(data_dir) / ref.name / ref.version


def _problem(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(manifest)"
    if error["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if error["type"] == "missing":
        return f"{loc}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}"


def load_manifest(directory: Path, *, expect: ModuleRef | None = None) -> ModuleManifest:
    """Read and check `directory/manifest.toml`, and that the files it names exist.

    Raises:
        ManifestInvalid: with every problem found (unknown keys, bad values, missing files,
            a name or version that differs from the directory it sits in).
    """
    path = directory / MANIFEST_NAME
    try:
        if path.is_symlink():
            raise ManifestInvalid(path, ["manifest.toml is a symbolic link"])
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestInvalid(path, [f"cannot read the manifest ({exc.strerror or exc})"]) from None
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise ManifestInvalid(path, [f"the manifest is larger than {_MAX_MANIFEST_BYTES} bytes"])
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ManifestInvalid(path, ["the manifest is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestInvalid(path, [f"not valid TOML: {exc}"]) from None
    try:
        # Through JSON, strictly: "1" is not a number, but arrays still become tuples.
        manifest = ModuleManifest.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        raise ManifestInvalid(path, [_problem(error) for error in exc.errors()]) from None
    problems = []
    if expect is not None and manifest.ref != expect:
        problems.append(f"name/version: the manifest says {manifest.ref}, its directory is {expect}")
    entry = directory / manifest.entry
    if not entry.is_file() or entry.is_symlink():
        problems.append(f"entry: {manifest.entry} is not a file in the module directory")
    if problems:
        raise ManifestInvalid(path, problems)
    return manifest
