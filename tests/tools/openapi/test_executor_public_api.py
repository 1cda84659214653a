"""The request side's public names, pinned: a rename or removal breaks this test first."""

from __future__ import annotations

import importlib

import pytest

from tools.errors import SetupError, ToolFailure, UpstreamFailure

PUBLIC = {
    "tools.openapi.executor": ["OperationExecutor", "make_executor"],
    "tools.openapi.upstream": ["Inject", "Upstream", "UpstreamConfig", "UpstreamLimits", "default_headers"],
    "tools.openapi.errors": [
        "BaseUrlRefused",
        "EgressBlocked",
        "RequestRefused",
        "ResponseTooLarge",
        "UpstreamError",
        "UpstreamTimeout",
        "UpstreamUnreachable",
        "translate_httpx_errors",
    ],
    "tools.openapi.urlsafety": [
        "EgressGuard",
        "EgressPolicy",
        "GuardedTransport",
        "Resolver",
        "SystemResolver",
        "check_base_url",
        "is_public_address",
    ],
    "tools.openapi.responses": ["read_capped", "to_tool_result"],
}


@pytest.mark.parametrize(("module", "names"), list(PUBLIC.items()), ids=list(PUBLIC))
def test_module_exports_exactly_its_documented_names(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    assert sorted(loaded.__all__) == sorted(names)
    assert all(hasattr(loaded, name) for name in names)


def test_executor_errors_sit_in_the_one_exception_tree() -> None:
    from tools.openapi import errors

    for upstream in (errors.UpstreamError, errors.UpstreamTimeout, errors.UpstreamUnreachable):
        assert issubclass(upstream, UpstreamFailure)
    assert issubclass(errors.ResponseTooLarge, UpstreamFailure)
    assert issubclass(errors.EgressBlocked, UpstreamFailure)
    assert issubclass(errors.RequestRefused, ToolFailure)
    assert issubclass(errors.BaseUrlRefused, SetupError)
