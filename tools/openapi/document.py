"""The typed top level of an OpenAPI document: version, servers, and its operations.

Only the structure a gateway relies on is checked here, strictly and with a pointer in every
message (a malformed document fails as a whole, before anything is registered). Schemas stay as
the JSON they are; `tools.openapi.schema` converts the ones an operation reaches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tools.model import json_type_name
from tools.openapi.refs import RefResolver, UnresolvableRef, join_pointer
from tools.openapi.spec_errors import SpecInvalid, SpecTooLarge

__all__ = ["HTTP_METHODS", "Dialect", "OperationEntry", "ServerEntry", "SpecDocument", "parse_document"]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Dialect = Literal["2.0", "3.0", "3.1"]
_OPENAPI_VERSION = re.compile(r"^3\.(\d+)\.\d+(?:-[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One `servers` entry with its variables' defaults (variables never become tool arguments)."""

    url: str
    defaults: Mapping[str, str]

    def expanded(self) -> str:
        url = self.url
        for name, value in self.defaults.items():
            url = url.replace("{" + name + "}", value)
        return url


@dataclass(frozen=True, slots=True)
class OperationEntry:
    """An operation as it sits in the document, before conversion."""

    method: str  # upper case
    path: str
    pointer: str
    raw: Any
    path_parameters: tuple[Any, ...]
    base_uri: str  # the document holding the path item (a path item may be a `$ref`)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class SpecDocument:
    origin: str
    uri: str
    root: Mapping[str, Any]
    version: str
    dialect: Dialect
    title: str
    servers: tuple[ServerEntry, ...]
    security: Any
    operations: tuple[OperationEntry, ...]
    # Document-level findings for the report: items that are not operations and were not used.
    problems: tuple[str, ...] = ()
    webhooks: int = 0


def _dialect(root: Mapping[str, Any], origin: str) -> tuple[str, Dialect]:
    if "swagger" in root:
        version = root["swagger"]
        if version != "2.0":
            raise SpecInvalid(origin, f'unsupported swagger version {version!r} (expected "2.0")', where="/swagger")
        return "2.0", "2.0"
    if "openapi" not in root:
        raise SpecInvalid(origin, "neither an 'openapi' nor a 'swagger' version field: not an OpenAPI document")
    version = root["openapi"]
    if not isinstance(version, str):
        raise SpecInvalid(
            origin,
            f"'openapi' must be a version string such as \"3.0.3\", got {type(version).__name__} {version!r}"
            " (quote it in YAML)",
            where="/openapi",
        )
    match = _OPENAPI_VERSION.match(version)
    if match is None or int(match.group(1)) > 2:
        raise SpecInvalid(
            origin, f"unsupported openapi version {version!r} (supported: 2.0, 3.0.x, 3.1.x)", where="/openapi"
        )
    return version, "3.0" if match.group(1) == "0" else "3.1"


def parse_document(root: Any, *, origin: str, uri: str, resolver: RefResolver, max_operations: int) -> SpecDocument:
    """Check the top-level structure and list the operations.

    Raises:
        SpecInvalid: not an object, a wrong or missing version, `paths` missing or not an object.
        SpecTooLarge: more than `max_operations` operations.
    """
    if not isinstance(root, dict):
        raise SpecInvalid(origin, f"the document must be an object, got {json_type_name(root)}")
    version, dialect = _dialect(root, origin)
    info = root.get("info")
    title = info.get("title") if isinstance(info, dict) else None
    paths = root.get("paths")
    if paths is None:
        if dialect != "3.1":
            raise SpecInvalid(origin, "'paths' is missing (required before OpenAPI 3.1)", where="/paths")
        paths = {}
    if not isinstance(paths, dict):
        raise SpecInvalid(origin, f"'paths' must be an object, got {json_type_name(paths)}", where="/paths")
    problems: list[str] = []
    operations: list[OperationEntry] = []
    for path, item in paths.items():
        pointer = join_pointer("paths", path)
        if not path.startswith("/"):
            problems.append(f"{pointer}: path does not start with '/'; not served")
            continue
        base = uri
        try:
            item, base = resolver.deref(item, uri)
        except UnresolvableRef as exc:
            problems.append(f"{pointer}: {exc}; not served")
            continue
        if not isinstance(item, dict):
            problems.append(f"{pointer}: path item is not an object; not served")
            continue
        shared = item.get("parameters", [])
        shared_params = tuple(shared) if isinstance(shared, list) else ()
        for method in HTTP_METHODS:
            if method in item:
                operations.append(
                    OperationEntry(
                        method=method.upper(),
                        path=path,
                        pointer=f"{pointer}/{method}",
                        raw=item[method],
                        path_parameters=shared_params,
                        base_uri=base,
                    )
                )
        if len(operations) > max_operations:
            raise SpecTooLarge(origin, f"more than {max_operations} operations (max_operations)", where="/paths")
    webhooks = root.get("webhooks")
    return SpecDocument(
        origin=origin,
        uri=uri,
        root=root,
        version=version,
        dialect=dialect,
        title=title if isinstance(title, str) else "",
        servers=_servers(root, dialect),
        security=root.get("security"),
        operations=tuple(operations),
        problems=tuple(problems),
        webhooks=len(webhooks) if isinstance(webhooks, dict) else 0,
    )


def _servers(root: Mapping[str, Any], dialect: Dialect) -> tuple[ServerEntry, ...]:
    if dialect == "2.0":
        host = root.get("host")
        base_path = root.get("basePath") if isinstance(root.get("basePath"), str) else ""
        if not isinstance(host, str) or not host:
            return (ServerEntry(url=base_path or "/", defaults={}),)
        schemes = root.get("schemes")
        listed = [s for s in schemes if isinstance(s, str)] if isinstance(schemes, list) else []
        scheme = "https" if "https" in listed or not listed else listed[0]
        return (ServerEntry(url=f"{scheme}://{host}{base_path}", defaults={}),)
    servers = root.get("servers")
    if not isinstance(servers, list):
        return ()
    entries = []
    for server in servers:
        if not isinstance(server, dict) or not isinstance(server.get("url"), str):
            continue
        variables = server.get("variables")
        defaults: dict[str, str] = {}
        if isinstance(variables, dict):
            for name, spec in variables.items():
                if isinstance(spec, dict) and "default" in spec:
                    defaults[str(name)] = str(spec["default"])
        entries.append(ServerEntry(url=server["url"], defaults=defaults))
    return tuple(entries)
