"""Tool names: deterministic, sanitized, within 64 characters; collisions are errors (THREATS O5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools.errors import ToolNameCollision
from tools.model import TOOL_NAME_PATTERN
from tools.openapi.build import build_spec
from tools.openapi.naming import NameAllocator, fit, operation_name, sanitize
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.source import OpenApiSource
from tools.registry import ToolRegistry


def _op(op_id: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    if op_id is not None:
        op["operationId"] = op_id
    return op


def _spec_file(tmp_path: Path, paths: dict[str, Any], name: str = "spec.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}))
    return path


def _names(tmp_path: Path, paths: dict[str, Any], **settings: Any) -> list[str | None]:
    path = _spec_file(tmp_path, paths)
    built = build_spec(OpenApiSourceSettings(spec=str(path), base_url="https://api.example.com", **settings))
    return [entry.tool for entry in built.conversion.report.operations]


NAMES = [
    pytest.param("listPets", "listPets", id="plain"),
    pytest.param("repos/get-content", "repos_get-content", id="slash"),
    pytest.param("get pets by id", "get_pets_by_id", id="spaces"),
    pytest.param("pets.list", "pets.list", id="dots-kept"),
    pytest.param("créerAnimal", "creerAnimal", id="accents-folded"),
    pytest.param("宠物列表", None, id="only-non-latin"),
    pytest.param("a\u200bb", "ab", id="zero-width"),
    pytest.param("__x__", "x", id="edge-underscores"),
]


@pytest.mark.parametrize(("raw", "expected"), NAMES)
def test_operation_ids_are_sanitized(raw: str, expected: str | None) -> None:
    name = operation_name(raw, "GET", "/x")
    assert TOOL_NAME_PATTERN.fullmatch(name)
    if expected is not None:
        assert name == expected
    assert operation_name(raw, "GET", "/x") == name  # deterministic


def test_missing_operation_id_uses_method_and_path() -> None:
    assert operation_name(None, "GET", "/pets/{petId}/toys") == "get_pets_petId_toys"
    assert operation_name(None, "DELETE", "/") == "delete"


def test_long_names_are_cut_to_64_with_a_stable_hash() -> None:
    """Two long names sharing a 60-character prefix stay distinct and never exceed 64."""
    first, second = "a" * 70 + "_one", "a" * 70 + "_two"
    cut_first, cut_second = fit(first), fit(second)
    assert len(cut_first) == len(cut_second) == 64
    assert cut_first != cut_second
    assert fit(first) == cut_first


def test_duplicates_are_numbered_in_document_order(tmp_path: Path) -> None:
    """THREATS O5: a repeated operationId is deduplicated deterministically, never overwritten."""
    paths = {"/a": {"get": _op("same"), "post": _op("same")}, "/b": {"get": _op("same")}}
    assert _names(tmp_path, paths) == ["same", "same_2", "same_3"]
    assert _names(tmp_path, paths) == ["same", "same_2", "same_3"]


def test_a_sanitized_clash_with_a_real_name_is_numbered(tmp_path: Path) -> None:
    paths = {"/a": {"get": _op("pets list"), "post": _op("pets_list")}}
    assert _names(tmp_path, paths) == ["pets_list", "pets_list_2"]


def test_prefix_counts_toward_the_64_character_limit(tmp_path: Path) -> None:
    paths = {"/a": {"get": _op("x" * 80)}}
    (name,) = _names(tmp_path, paths, prefix="gh_")
    assert name is not None
    assert name.startswith("gh_")
    assert len(name) == 64
    assert TOOL_NAME_PATTERN.fullmatch(name)


def test_excluding_an_operation_never_renames_the_others(tmp_path: Path) -> None:
    paths = {"/a": {"get": _op("same"), "post": _op("same")}}
    excluded = _names(tmp_path, paths, exclude={"methods": ["GET"]})
    assert excluded == [None, "same_2"]


def test_name_allocator_never_returns_a_taken_name() -> None:
    allocator = NameAllocator(["x", "x_2"])
    assert allocator.claim("x") == "x_3"
    assert allocator.claim("y" * 100).startswith("y")
    assert sanitize("") == "x"


def test_a_name_colliding_with_another_source_is_an_error_and_nothing_is_registered(tmp_path: Path) -> None:
    """THREATS O5: the second source fails as a whole; the first keeps its tool."""
    registry = ToolRegistry()
    first = _spec_file(tmp_path, {"/a": {"get": _op("shared")}}, "first.json")
    second = _spec_file(tmp_path, {"/b": {"get": _op("shared")}, "/c": {"get": _op("other")}}, "second.json")
    OpenApiSource(OpenApiSourceSettings(spec=str(first), base_url="https://a.example.com"), registry).load()
    source = OpenApiSource(OpenApiSourceSettings(spec=str(second), base_url="https://b.example.com"), registry)
    with pytest.raises(ToolNameCollision, match="shared"):
        source.load()
    assert registry.sources() == {"first": ("shared",)}
    assert registry.get("other") is None


def test_a_prefix_resolves_a_cross_source_collision(tmp_path: Path) -> None:
    registry = ToolRegistry()
    first = _spec_file(tmp_path, {"/a": {"get": _op("shared")}}, "first.json")
    second = _spec_file(tmp_path, {"/b": {"get": _op("shared")}}, "second.json")
    OpenApiSource(OpenApiSourceSettings(spec=str(first), base_url="https://a.example.com"), registry).load()
    OpenApiSource(
        OpenApiSourceSettings(spec=str(second), base_url="https://b.example.com", prefix="b_"), registry
    ).load()
    assert registry.sources() == {"first": ("shared",), "second": ("b_shared",)}
