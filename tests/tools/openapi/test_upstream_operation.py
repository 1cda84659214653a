"""One API served twice under two prefixes: both names reach one upstream operation (THREATS R2).

The policy decides tools on one upstream operation together, so a generous grant on one name
cannot widen a stricter one on the other; the same operation on another upstream is separate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.pipeline import build_pipeline
from server.pipeline.chain import Pipeline
from server.policy import Authorize, PolicyHolder, PolicySettings
from tools.errors import ToolHidden
from tools.model import UPSTREAM_OPERATION, CallContext, Principal
from tools.openapi.settings import OpenApiSourceSettings
from tools.openapi.source import OpenApiSource
from tools.registry import ToolRegistry

pytestmark = pytest.mark.anyio

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "crm", "version": "1"},
    "paths": {
        "/users/{id}": {
            "delete": {
                "operationId": "deleteUser",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"204": {"description": "gone"}},
            }
        }
    },
}


def _load(tmp_path: Path, registry: ToolRegistry, name: str, prefix: str, base_url: str) -> None:
    spec = tmp_path / "crm.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    settings = OpenApiSourceSettings(spec=str(spec), name=name, prefix=prefix, base_url=base_url)
    OpenApiSource(settings, registry).load()


def _pipeline(registry: ToolRegistry) -> Pipeline:
    # Developers may delete through crm_*, never through legacy_*.
    policy = PolicySettings.model_validate(
        {"rules": [{"id": "no-legacy", "effect": "deny", "roles": ["developer"], "tools": ["legacy_*"]}]}
    )
    return build_pipeline(registry, call_timeout_s=5, authorize=Authorize(PolicyHolder(policy), registry))


def test_each_tool_names_the_upstream_operation_it_reaches(tmp_path: Path) -> None:
    registry = ToolRegistry()
    _load(tmp_path, registry, "crm", "crm_", "https://crm.example.com/api/")
    (tool,) = registry.tools()
    assert tool.meta[UPSTREAM_OPERATION] == "https://crm.example.com/api DELETE /users/{id}"


async def test_a_second_name_for_one_operation_never_widens_the_stricter_grant(tmp_path: Path) -> None:
    registry = ToolRegistry()
    _load(tmp_path, registry, "crm", "crm_", "https://crm.example.com/api")
    _load(tmp_path, registry, "legacy", "legacy_", "https://crm.example.com/api")
    _load(tmp_path, registry, "sandbox", "sandbox_", "https://sandbox.crm.example.com/api")
    pipeline = _pipeline(registry)
    developer = Principal("dev", ("developer",))
    # crm_deleteUser alone would be allowed; legacy_deleteUser reaches the same operation and is denied.
    assert [t.name for t in pipeline.list_tools(developer)] == ["sandbox_deleteUser"]
    with pytest.raises(ToolHidden):
        await pipeline.call_tool("crm_deleteUser", {"id": 7}, CallContext(principal=developer))
    admin = Principal("root", ("admin",))
    assert [t.name for t in pipeline.list_tools(admin)] == ["crm_deleteUser", "legacy_deleteUser", "sandbox_deleteUser"]
