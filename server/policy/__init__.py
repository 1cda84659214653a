"""Role-based access control with argument conditions: one decision for listing and calling."""

from server.policy.engine import DEFAULT_DENY, Decision, Policy, PolicyError, access_of
from server.policy.explain import Explanation, explain
from server.policy.loader import PolicyHolder, load_policy_file
from server.policy.model import Condition, PolicyFile, PolicySettings, RoleSettings, RuleSettings
from server.policy.safe_regex import PatternError, SafePattern
from server.policy.step import UPSTREAM_OPERATION, Authorize, final_arguments

__all__ = [
    "DEFAULT_DENY",
    "UPSTREAM_OPERATION",
    "Authorize",
    "Condition",
    "Decision",
    "Explanation",
    "PatternError",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "PolicyHolder",
    "PolicySettings",
    "RoleSettings",
    "RuleSettings",
    "SafePattern",
    "access_of",
    "explain",
    "final_arguments",
    "load_policy_file",
]
