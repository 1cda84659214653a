"""What `/readyz` checks: the server's own database and the audit store.

A tool gateway whose audit store cannot take a write refuses every audited call (fail closed,
THREATS K4), so it is not ready even though its process is up: a load balancer should route
elsewhere and an operator should look. The probe asks the ledger's writer for a write transaction
(`BEGIN IMMEDIATE` … `COMMIT`) and waits a bounded time, so a database held by another process,
a dead writer thread or a failing commit each read as degraded instead of hanging the probe.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

import anyio
import structlog

from server.audit.ledger import Ledger

__all__ = ["AuditHealth", "audit_health"]

log = structlog.get_logger("toolkiln.readiness")

AuditHealth = Literal["ok", "degraded", "off"]
PROBE_TIMEOUT_S = 2.0


def _probe(conn: sqlite3.Connection, _batch: object) -> Any:
    return conn.execute("SELECT 1").fetchone()


async def audit_health(ledger: Ledger, *, timeout_s: float = PROBE_TIMEOUT_S) -> AuditHealth:
    """`ok` when the ledger committed a probe transaction in time, `off` when there is no ledger file."""
    writer = ledger.writer
    if writer is None:
        return "off"
    if not writer.started:
        # Opened by `Runtime.running`; not open means start-up has not finished or it was closed.
        return "degraded"
    try:
        with anyio.fail_after(timeout_s):
            await writer.run(_probe)
    except TimeoutError:
        log.warning("audit_store_slow", timeout_s=timeout_s)
        return "degraded"
    except Exception as exc:  # any failure to commit is the answer, not a crash of the probe
        log.warning("audit_store_unavailable", error=type(exc).__name__)
        return "degraded"
    return "ok"
