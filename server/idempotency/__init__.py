"""Idempotency keys: a repeated mutating call returns the stored result instead of running again."""

from server.idempotency.step import IdempotencyConflict, IdempotencyStep, dump_result, load_result
from server.idempotency.store import (
    IDEMPOTENCY_SCHEMA,
    Claim,
    IdempotencyStore,
    MemoryIdempotency,
    SqliteIdempotency,
)

__all__ = [
    "IDEMPOTENCY_SCHEMA",
    "Claim",
    "IdempotencyConflict",
    "IdempotencyStep",
    "IdempotencyStore",
    "MemoryIdempotency",
    "SqliteIdempotency",
    "dump_result",
    "load_result",
]
