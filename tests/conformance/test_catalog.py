"""The resource and prompt catalog: ownership, versioning, change events, template matching."""

from __future__ import annotations

from collections.abc import Mapping

import mcp_types as types
import pytest

from tools.catalog import Catalog, CatalogChange, Prompt, Resource, ResourceContents, ResourceTemplate
from tools.errors import ToolNameCollision
from tools.model import CallContext


async def _read(uri: str, _: Mapping[str, str], __: CallContext) -> list[ResourceContents]:
    return [types.TextResourceContents(uri=uri, text="x")]


async def _render(_: Mapping[str, str], __: CallContext) -> list[types.PromptMessage]:
    return []


def resource(uri: str, source: str = "a") -> Resource:
    return Resource(uri=uri, name=uri, description="d", read=_read, source=source)


def prompt(name: str, source: str = "a") -> Prompt:
    return Prompt(name=name, description="d", render=_render, source=source)


def template(pattern: str, source: str = "a") -> ResourceTemplate:
    return ResourceTemplate(uri_template=pattern, name=pattern, description="d", read=_read, source=source)


def recording(catalog: Catalog) -> list[CatalogChange]:
    changes: list[CatalogChange] = []
    catalog.subscribe(changes.append)
    return changes


def test_replacing_a_source_bumps_the_version_and_names_only_the_lists_that_changed() -> None:
    catalog = Catalog()
    changes = recording(catalog)

    catalog.replace_source("a", resources=[resource("test://one")])
    catalog.replace_source("a", resources=[resource("test://one")], prompts=[prompt("p")])

    assert [(c.kind, c.version) for c in changes] == [("resources", 1), ("prompts", 2)]
    assert catalog.version == 2


def test_replacing_a_source_with_identical_entries_changes_nothing() -> None:
    catalog = Catalog()
    catalog.replace_source("a", prompts=[prompt("p")])
    changes = recording(catalog)

    assert catalog.replace_source("a", prompts=[prompt("p")]) == 1
    assert changes == []


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param({"resources": [resource("test://shared", source="b")]}, id="same-resource-uri"),
        pytest.param({"prompts": [prompt("shared", source="b")]}, id="same-prompt-name"),
        pytest.param({"templates": [template("test://t/{id}", source="b")]}, id="same-uri-template"),
    ],
)
def test_a_second_source_cannot_take_over_an_owned_entry(entries: dict[str, list[object]]) -> None:
    catalog = Catalog()
    catalog.replace_source(
        "a", resources=[resource("test://shared")], prompts=[prompt("shared")], templates=[template("test://t/{id}")]
    )

    with pytest.raises(ToolNameCollision):
        catalog.replace_source("b", **entries)  # type: ignore[arg-type]

    assert catalog.version == 1
    assert {p.source for p in catalog.prompts()} == {"a"}


def test_adding_and_removing_a_prompt_sends_two_prompt_list_changes_and_restores_the_list() -> None:
    catalog = Catalog()
    catalog.replace_source("a", prompts=[prompt("kept")])
    changes = recording(catalog)

    catalog.add_prompt(prompt("brief", source="dyn"))
    catalog.remove_prompt("brief")

    assert [c.kind for c in changes] == ["prompts", "prompts"]
    assert [p.name for p in catalog.prompts()] == ["kept"]


def test_a_resource_update_is_announced_without_a_version_change() -> None:
    catalog = Catalog()
    catalog.replace_source("a", resources=[resource("test://watched")])
    changes = recording(catalog)

    catalog.resource_updated("test://watched")

    assert changes == [CatalogChange(kind="updated", version=1, uri="test://watched")]


def test_a_fixed_resource_wins_over_a_template_matching_the_same_uri() -> None:
    catalog = Catalog()
    catalog.replace_source("a", resources=[resource("test://t/fixed")], templates=[template("test://t/{id}")])

    found = catalog.find_resource("test://t/fixed")
    assert found is not None
    assert isinstance(found[0], Resource)
    found = catalog.find_resource("test://t/other")
    assert found is not None
    assert found[1] == {"id": "other"}


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("test://template/1/2/data", id="variable-spanning-two-segments"),
        pytest.param("test://template//data", id="empty-variable"),
        pytest.param("test://template/1/data?x=1", id="query-appended"),
        pytest.param("test://template/1/data#frag", id="fragment-appended"),
        pytest.param("test://template/1/dataX", id="suffix-appended"),
        pytest.param("TEST://template/1/data", id="scheme-case-changed"),
        pytest.param("test://templateX1/data", id="literal-part-altered"),
    ],
)
def test_a_template_variable_matches_exactly_one_non_empty_path_segment(uri: str) -> None:
    assert template("test://template/{id}/data").match(uri) is None


def test_template_literals_are_matched_literally_not_as_regular_expressions() -> None:
    dotted = template("test://a.b/{id}")

    assert dotted.match("test://a.b/1") == {"id": "1"}
    assert dotted.match("test://aXb/1") is None
