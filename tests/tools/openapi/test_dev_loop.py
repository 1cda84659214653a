"""The local loop with a spec: `toolkiln tools|call --spec … --base-url …` launch `toolkiln serve`
with those sources, and `toolkiln init` documents every `[[sources]]` key with its default."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from server.config import load_settings
from server.init_config import EXAMPLE_CONFIG
from tests.support.servers import toolkiln_command
from tests.tools.openapi.conftest import LocalServer
from tools.openapi.settings import OpenApiSourceSettings, OperationFilter

PETSTORE = """
openapi: 3.0.3
info: {title: Petstore, version: "1"}
servers: [{url: "https://petstore.example.com/v1"}]
paths:
  /pets:
    get:
      operationId: listPets
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 100}}
      responses:
        "200": {description: the pets, content: {application/json: {schema: {type: object}}}}
  /pets/{petId}:
    delete:
      operationId: deletePet
      parameters:
        - {name: petId, in: path, required: true, schema: {type: string}}
      responses:
        "204": {description: gone}
"""


def _toolkiln(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKILN_")}
    return subprocess.run(
        toolkiln_command(*args), capture_output=True, text=True, timeout=50, cwd=cwd, env=env, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def petstore(tmp_path: Path) -> Path:
    path = tmp_path / "petstore.yaml"
    path.write_text(PETSTORE, encoding="utf-8")
    return path


def test_call_with_a_spec_and_base_url_sends_one_request_to_that_upstream(
    petstore: Path, echo_server: LocalServer
) -> None:
    """The launched server serves the spec against the given base URL; its loopback host is allowed
    because the operator named it. The spec path is relative to the caller's directory."""
    done = _toolkiln(
        "call", "--spec", petstore.name, "--base-url", echo_server.url, "listPets", "limit=2", cwd=petstore.parent
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["method"], answer["raw_path"], answer["query"]) == ("GET", "/pets", "limit=2")
    assert [r["raw_path"] for r in echo_server.seen.requests] == ["/pets"]


def test_tools_with_a_spec_lists_its_operations_with_their_hints(petstore: Path, echo_server: LocalServer) -> None:
    done = _toolkiln("tools", "--spec", str(petstore), "--base-url", echo_server.url, "--json", cwd=petstore.parent)
    assert done.returncode == 0, done.stderr
    listed = {tool["name"]: tool for tool in json.loads(done.stdout)["tools"]}
    assert {"listPets", "deletePet"} <= set(listed)
    assert listed["listPets"]["annotations"]["readOnlyHint"] is True
    assert listed["deletePet"]["annotations"]["destructiveHint"] is True
    assert echo_server.seen.requests == []  # listing calls no upstream


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--url", "http://127.0.0.1:9/mcp", "--spec", "petstore.yaml"],
            "--spec launches a server of its own; it cannot be combined with --url",
            id="spec-with-url",
        ),
        pytest.param(["--spec", "petstore.yaml", "--base-url", "ftp://x"], "must be an absolute http(s) URL", id="ftp"),
        pytest.param(["--base-url", "http://127.0.0.1:9"], "--base-url must follow the --spec", id="no-spec"),
    ],
)
def test_tools_refuses_spec_options_it_cannot_honour_before_launching_anything(
    petstore: Path, args: list[str], message: str
) -> None:
    done = _toolkiln("tools", *args, cwd=petstore.parent)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
    assert not (petstore.parent / ".toolkiln").exists()  # no server ever started here


def _sources_block() -> str:
    """The example's commented `[[sources]]` block with the comment marks taken off its settings."""
    start = EXAMPLE_CONFIG.index("# [[sources]]")
    lines = []
    for line in EXAMPLE_CONFIG[start:].splitlines():
        setting = re.fullmatch(r"# (\[\[?sources[\w.\]]*\]?(?:\s+#.*)?|[a-z_]+ = .*)", line)
        if setting:
            lines.append(setting.group(1))
    return "\n".join(lines) + "\n"


def test_the_example_config_names_every_source_setting() -> None:
    documented = EXAMPLE_CONFIG[EXAMPLE_CONFIG.index("# [[sources]]") :]
    for key in [*OpenApiSourceSettings.model_fields, *OperationFilter.model_fields]:
        assert re.search(rf"^# ({key} =|{key}:|\[sources\.{key}[.\]])", documented, re.M), f"{key} is not documented"


def test_the_example_sources_block_uncommented_loads_and_shows_the_defaults(tmp_path: Path) -> None:
    """Every value the block shows is the default, except the ones it says are examples."""
    block = _sources_block()
    config = tmp_path / "toolkiln.toml"
    config.write_text(block, encoding="utf-8")
    (source,) = load_settings(config).sources
    shown: dict[str, Any] = tomllib.loads(block)["sources"][0]
    examples = {"spec", "name", "base_url", "prefix", "include", "exclude", "auth"}
    assert examples <= set(shown)
    defaults = OpenApiSourceSettings(spec=source.spec)
    for key in set(shown) - examples:
        assert getattr(source, key) == getattr(defaults, key), key
    assert source.include == OperationFilter(tags=("pets",), methods=("GET", "POST"))
    assert source.exclude == OperationFilter(operation_ids=("deletePet",), paths=("/admin/*",))
