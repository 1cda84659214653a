"""The audit log: intent and outcome records of every call in a hash chain with signed checkpoints.

`server.audit.ledger.Ledger` assembles the durable side of the policy chain (audit, quotas,
idempotency, shared rate limits) from settings; it is imported from there, not re-exported here,
so that the limits and idempotency packages can use the writer without an import cycle.
"""

from server.audit.canonical import canonical_json, chain_hash, checkpoint_mac
from server.audit.keys import AuditKeyMissing
from server.audit.log import AuditLog
from server.audit.redact import Redactor
from server.audit.status import classify
from server.audit.verify import VerifyReport, verify_chain
from server.audit.writer import GroupCommitWriter, LedgerUnavailable

__all__ = [
    "AuditKeyMissing",
    "AuditLog",
    "GroupCommitWriter",
    "LedgerUnavailable",
    "Redactor",
    "VerifyReport",
    "canonical_json",
    "chain_hash",
    "checkpoint_mac",
    "classify",
    "verify_chain",
]
