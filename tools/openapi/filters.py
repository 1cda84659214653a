"""Include/exclude selection of operations by operationId, tag, path glob and method."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from tools.openapi.settings import OperationFilter

__all__ = ["excluded_reason", "matches"]


def matches(
    selector: OperationFilter, *, operation_id: str | None, tags: Sequence[str], path: str, method: str
) -> bool:
    """Whether every criterion the filter sets matches (an empty filter matches nothing)."""
    if selector.empty:
        return False
    if selector.operation_ids and operation_id not in selector.operation_ids:
        return False
    if selector.tags and not set(tags) & set(selector.tags):
        return False
    if selector.paths and not any(fnmatchcase(path, glob) for glob in selector.paths):
        return False
    return not selector.methods or method.upper() in selector.methods


def excluded_reason(
    include: OperationFilter | None,
    exclude: OperationFilter,
    *,
    operation_id: str | None,
    tags: Sequence[str],
    path: str,
    method: str,
) -> str | None:
    """Why the config leaves this operation out, or None when it is served."""
    if include is not None and not matches(include, operation_id=operation_id, tags=tags, path=path, method=method):
        return "not selected by the source's include filter"
    if matches(exclude, operation_id=operation_id, tags=tags, path=path, method=method):
        return "excluded by the source's exclude filter"
    return None
