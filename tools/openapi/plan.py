"""How one OpenAPI operation becomes an HTTP request: the contract between conversion and execution.

The converter (`tools.openapi.convert`) turns each operation into an `OperationPlan` plus the
tool's JSON Schemas; the executor (`tools.openapi.executor`) turns a plan and validated
arguments into exactly one request to the source's base URL. Plans are plain frozen data so
they can be hashed, compared on reload and printed in reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["BodyField", "BodyPlan", "OperationPlan", "ParamLocation", "ParamPlan"]

ParamLocation = Literal["path", "query", "header", "cookie"]


@dataclass(frozen=True, slots=True)
class ParamPlan:
    """One parameter: where it goes and how it is serialized (OpenAPI `style`/`explode`)."""

    name: str  # the name on the wire, as the spec spells it
    arg: str  # the key in the tool's flat argument object (collision-safe)
    location: ParamLocation
    style: str  # simple | label | matrix | form | spaceDelimited | pipeDelimited | deepObject
    explode: bool
    required: bool = False
    allow_reserved: bool = False
    # The JSON type of the value ("array", "object", "string", …) when the schema says one.
    value_type: str | None = None


@dataclass(frozen=True, slots=True)
class BodyField:
    """A top-level property of an object request body exposed as its own argument."""

    arg: str
    property: str
    required: bool = False
    is_file: bool = False  # multipart: binary content (base64 in the argument) sent as a file part


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """The request body: its media type and how arguments map onto it.

    Either `whole_arg` names one argument that carries the entire body (non-object bodies, or
    objects whose properties would collide), or `fields` lists the flattened properties.
    """

    media_type: str  # application/json | application/x-www-form-urlencoded | multipart/form-data | …
    required: bool = False
    whole_arg: str | None = None
    fields: tuple[BodyField, ...] = ()
    # Per-property encoding hints for form bodies (OpenAPI `encoding`): property → {style, explode,…}.
    encoding: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """Everything the executor needs to send one operation."""

    method: str  # upper case: GET, POST, …
    path: str  # the path template as in the spec, e.g. "/pets/{petId}"
    operation_id: str | None = None
    params: tuple[ParamPlan, ...] = ()
    body: BodyPlan | None = None
    # Security requirement alternatives for this operation (OpenAPI `security`): each entry maps
    # scheme name → scopes. Empty tuple = no auth. The converter resolves inheritance: an operation
    # without its own `security` gets the document's; None = the spec declares none anywhere.
    security: tuple[Mapping[str, tuple[str, ...]], ...] | None = None
    # Media type preferred in `Accept`, from the 2xx responses.
    accept: str | None = None
