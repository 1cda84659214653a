"""Every spec of the shared corpus converts: each operation is a valid tool or a reported skip.

The corpus lives outside the repository (../shared/specs from the repo root); it is required,
so its absence fails the run instead of silently skipping the one test that proves conversion.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import yaml
from jsonschema import Draft202012Validator

from tools.model import Tool
from tools.openapi.build import build_spec
from tools.openapi.document import HTTP_METHODS
from tools.openapi.executor import make_executor
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.upstream import Upstream

ROOT = Path(__file__).resolve().parents[3]
CORPUS = (ROOT / ".." / "shared" / "specs").resolve()
SPEC_FILES = sorted(p.name for p in CORPUS.glob("*") if p.suffix in (".json", ".yaml")) if CORPUS.is_dir() else []
META = Draft202012Validator(Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def _never(*_: Any) -> Any:
    raise AssertionError("not called")


def _raw_operation_count(path: Path) -> int:
    text = path.read_bytes()
    data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=yaml.CSafeLoader)
    paths = data.get("paths") or {}
    return sum(1 for item in paths.values() if isinstance(item, dict) for method in HTTP_METHODS if method in item)


def _refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _meta_errors(schema: dict[str, Any], checked: set[int]) -> list[str]:
    """Meta-schema errors of `schema`; each shared `$defs` body is checked once (it is one object)."""
    top = {k: v for k, v in schema.items() if k != "$defs"}
    errors = [f"top: {e.message}" for e in META.iter_errors(top)]
    for name, body in schema.get("$defs", {}).items():
        if id(body) in checked:
            continue
        checked.add(id(body))
        errors.extend(f"$defs/{name}: {e.message}" for e in META.iter_errors(body))
    defined = set(schema.get("$defs", {}))
    for ref in _refs(schema):
        if not ref.startswith("#/$defs/") or ref[len("#/$defs/") :] not in defined:
            errors.append(f"dangling {ref}")
    return errors


def test_the_corpus_is_present() -> None:
    """The shared corpus is where the suite expects it, with its 21 documents."""
    assert CORPUS.is_dir(), f"the OpenAPI corpus is missing: expected it at {CORPUS}"
    assert len(SPEC_FILES) >= 21, SPEC_FILES


@pytest.mark.parametrize("name", SPEC_FILES or ["<corpus missing>"])
def test_every_operation_is_a_valid_tool_or_a_reported_skip(name: str) -> None:
    """Loads without exception; each operation is reported; each tool's schemas are valid 2020-12."""
    path = CORPUS / name
    assert path.is_file(), f"missing corpus file {path}"
    built = build_spec(OpenApiSourceSettings(spec=str(path)))
    report = built.conversion.report
    assert len(report.operations) == _raw_operation_count(path)
    drafts = {draft.name: draft for draft in built.conversion.drafts}
    checked: set[int] = set()
    converted = 0
    for entry in report.operations:
        if entry.status == "skipped":
            assert entry.reason, entry
            assert entry.tool is None
            continue
        converted += 1
        draft = drafts[entry.tool or ""]
        assert entry.schema_bytes is not None
        assert entry.schema_bytes > 0
        problems = _meta_errors(draft.input_schema, checked)
        assert draft.input_schema["type"] == "object"
        if draft.output_schema is not None:
            assert draft.output_schema["type"] == "object"
            problems += _meta_errors(draft.output_schema, checked)
        assert not problems, f"{entry.operation} → {entry.tool}: {problems[:5]}"
        # The pipeline's own validator compiles it and evaluates an instance without crashing.
        Draft202012Validator(draft.input_schema).is_valid({})
        tool = Tool(
            name=draft.name,
            description=draft.description,
            input_schema=draft.input_schema,
            output_schema=draft.output_schema,
            executor=_never,
            source="corpus",
        )
        types.Tool(name=tool.name, description=tool.description, input_schema=tool.input_schema)
    assert converted == len(drafts)
    assert len(set(drafts)) == len(drafts)
    # Sources compile executors lazily; every plan must compile (a converter bug fails here).
    upstream = Upstream("https://api.example.com")
    for draft in drafts.values():
        make_executor(draft.plan, upstream)


@pytest.mark.parametrize("name", ["github-api-3.0.json", "stripe-2022-04-spec3-3.0.json", "k8s-1.24-apps-v1-3.0.json"])
def test_tools_list_stays_under_ten_times_the_spec_size(name: str) -> None:
    """The whole tools/list of a large spec is smaller than 10× the document itself."""
    path = CORPUS / name
    built = build_spec(OpenApiSourceSettings(spec=str(path)))
    wire = types.ListToolsResult(
        tools=[
            types.Tool(
                name=d.name, description=d.description, input_schema=d.input_schema, output_schema=d.output_schema
            )
            for d in built.conversion.drafts
        ]
    )
    size = len(wire.model_dump_json(by_alias=True, exclude_none=True))
    assert size < 10 * path.stat().st_size, (size, path.stat().st_size)
