"""Which buckets a call is charged to: every configured rule whose tool and source globs match.

Bucket keys are SHA-256 digests of the rule name and the scope's parts, separated by NUL, so
principal ids with `:`, `{}`, `*` or 2 KB of text can neither collide with one another nor
bloat the store.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence

from server.config import LimitRule
from server.limits.gcra import BucketSpec
from tools.model import Principal, Tool

__all__ = ["LimitRules", "bucket_key"]


def bucket_key(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:40]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class LimitRules:
    """The configured rules, with the per-tool match cached (tools change rarely, calls often)."""

    def __init__(self, rules: Sequence[LimitRule]) -> None:
        self.rules = tuple(rules)
        self._matching: dict[tuple[str, str], tuple[LimitRule, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def buckets(self, principal: Principal, tool: Tool) -> list[BucketSpec]:
        cache_key = (tool.name, tool.source)
        matching = self._matching.get(cache_key)
        if matching is None:
            matching = tuple(
                rule for rule in self.rules if _matches(tool.name, rule.tools) and _matches(tool.source, rule.sources)
            )
            if len(self._matching) < 10_000:
                self._matching[cache_key] = matching
        return [self._spec(rule, principal, tool) for rule in matching]

    @staticmethod
    def _spec(rule: LimitRule, principal: Principal, tool: Tool) -> BucketSpec:
        if rule.per == "principal_tool":
            key = bucket_key(rule.name, principal.id, tool.name)
        elif rule.per == "principal":
            key = bucket_key(rule.name, principal.id)
        elif rule.per == "source":
            key = bucket_key(rule.name, tool.source)
        else:
            key = bucket_key(rule.name)
        return BucketSpec(
            key=key,
            rule=rule.name,
            scope=rule.per,
            limit=rule.limit,
            period_s=rule.period_s,
            burst=rule.burst or rule.limit,
        )
