"""The ledger: the durable side of the policy chain, assembled from settings.

One SQLite file (`audit.db` in the data directory) holds the audit chain, quota reservations and
usage, idempotency claims and the shared rate-limit buckets. They live together, apart from the
server's main database, for two reasons:

- atomicity: a quota settle, an idempotency result and the audit outcome of one call are committed
  in the same group-commit transaction (or in FIFO order), so "quota used" always equals "charges
  in the audit log", even across a SIGKILL;
- a single writer per process: the group-commit writer holds the write lock for a whole batch;
  keeping unrelated writes (tokens, registry state) out of this file keeps them from queueing
  behind audit batches and vice versa, and lets the audit choose its own `synchronous` level.

The file opens lazily on first use (or eagerly from `Runtime.running`), runs crash
reconciliation, and builds the pipeline steps: `outer` (metrics and audit, around resolve) and
`inner` (limits and quota, idempotency, audit intent, right before the executor).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from server.audit.log import AuditLog
from server.audit.reconcile import reconcile, reconcile_in
from server.audit.redact import Redactor
from server.audit.steps import AuditCalls, AuditIntent, AuditRecorder, CallsInFlight
from server.audit.writer import Batch, GroupCommitWriter, Op
from server.config import Settings
from server.idempotency import IDEMPOTENCY_SCHEMA, IdempotencyStep, MemoryIdempotency, SqliteIdempotency
from server.idempotency.store import IdempotencyStore
from server.limits import (
    LIMITS_SCHEMA,
    LimitBackend,
    LimitRules,
    LimitStep,
    MemoryLimits,
    MemoryQuota,
    QuotaBackend,
    SqliteLimits,
    SqliteQuota,
)
from server.limits.backend import Clock
from server.metrics import Metrics, RecordMetrics
from server.pipeline.chain import Step

__all__ = ["Ledger", "LedgerPaths"]


@dataclass(frozen=True, slots=True)
class LedgerPaths:
    db: Path
    key: Path
    head: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> LedgerPaths:
        data_dir = settings.server.data_dir
        db = settings.audit.path or data_dir / "audit.db"
        key = settings.audit.key_path or data_dir / "audit.key"
        return cls(db=db, key=key, head=key.with_name(db.stem + ".head"))


class Ledger:
    """Owns the writer, the backends and the steps; one per runtime."""

    def __init__(self, settings: Settings, *, clock: Clock = time.time, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.paths = LedgerPaths.from_settings(settings)
        self.metrics = metrics or Metrics()
        self.audit_log = AuditLog(self.paths.key, self.paths.head)
        limits, quotas = settings.limits, settings.quotas
        rules = LimitRules(limits.rules)
        has_budgets = quotas.daily is not None or quotas.monthly is not None or bool(quotas.principals)
        needs_db = (
            settings.audit.enabled
            or (bool(rules) and limits.backend == "sqlite")
            or (has_budgets and quotas.backend == "sqlite")
        )
        self.writer: GroupCommitWriter | None = None
        if needs_db:
            self.writer = GroupCommitWriter(
                self.paths.db,
                setup=[self._setup],
                synchronous=settings.audit.synchronous,
                housekeeping=self.audit_log.flush_head,
                periodic=self._reconcile_siblings,
                deferred=self._closed_calls,
            )
        self.limits: LimitBackend | None = None
        if rules:
            self.limits = SqliteLimits(self.writer, clock) if self.writer and limits.backend == "sqlite" else None
            self.limits = self.limits or MemoryLimits(clock)
        self.quota: QuotaBackend | None = None
        if has_budgets:
            self.quota = SqliteQuota(self.writer, clock) if self.writer and quotas.backend == "sqlite" else None
            self.quota = self.quota or MemoryQuota(clock)
        self.idempotency: IdempotencyStore = (
            SqliteIdempotency(self.writer, clock) if self.writer is not None else MemoryIdempotency(clock)
        )
        self.recorder: AuditRecorder | None = None
        if settings.audit.enabled and self.writer is not None:
            redactor = Redactor(
                max_string_chars=settings.audit.max_string_chars, extra_names=settings.logging.redact_keys
            )
            self.recorder = AuditRecorder(self.writer, self.audit_log, redactor)
        self.limit_step = LimitStep(rules, self.limits, self.quota, quotas, limits_shadow=limits.shadow, clock=clock)
        self.reconciled = 0

    def _setup(self, conn: sqlite3.Connection) -> None:
        for statement in (*LIMITS_SCHEMA, *IDEMPOTENCY_SCHEMA):
            conn.execute(statement)
        self.audit_log.setup(conn)
        self.reconciled = reconcile(conn, self.audit_log)

    def _reconcile_siblings(self, conn: sqlite3.Connection, batch: Batch) -> int:
        # Another process on this host may die while this one keeps running.
        closed = reconcile_in(conn, batch, self.audit_log)
        self.reconciled += closed
        return closed

    def _closed_calls(self) -> Op[int] | None:
        return self.audit_log.delete_closed if self.audit_log.closing else None

    async def reconcile_now(self) -> int:
        """Reconcile dead processes' calls now instead of at the next periodic pass."""
        if self.writer is None:
            return 0
        return await self.writer.run(self._reconcile_siblings)

    @property
    def outer_steps(self) -> list[Step]:
        """Around resolve: they see every call, including unknown, hidden and invalid ones."""
        steps: list[Step] = [RecordMetrics(self.metrics)]
        if self.writer is not None:
            steps.insert(0, CallsInFlight(self.writer))
        if self.recorder is not None:
            steps.append(AuditCalls(self.recorder))
        return steps

    @property
    def inner_steps(self) -> list[Step]:
        """After authorization, right before the deadline and the executor."""
        return [
            self.limit_step,
            IdempotencyStep(self.idempotency, self.settings.idempotency),
            AuditIntent(self.recorder),
        ]

    def open(self) -> None:
        """Open the database now (instead of on the first call) so start-up problems surface early.

        Raises:
            sqlite3.Error, OSError, server.audit.keys.AuditKeyMissing: the ledger cannot be opened.
        """
        if self.writer is not None:
            self.writer.start()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.audit_log.flush_head()
