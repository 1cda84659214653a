"""API tokens: random bearer secrets for HTTP callers, stored only as SHA-256 hashes.

A token reads `tkn_<id>_<secret>`: the id is public (listed, revoked by it), the secret is 256
random bits. Because the secret is random, a plain SHA-256 is enough to make a stolen database
useless (there is nothing to brute-force), and the lookup is by id with a constant-time
comparison of hashes. The plaintext is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

import aiosqlite

__all__ = ["TOKEN_PREFIX", "ApiToken", "TokenStore", "looks_like_api_token"]

TOKEN_PREFIX = "tkn_"  # noqa: S105 - a public prefix, not a secret
_SHAPE = re.compile(r"^tkn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def looks_like_api_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    principal: str
    roles: tuple[str, ...]
    label: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


_COLUMNS = "id, principal, roles, label, created_at, expires_at, revoked_at"


def _row(row: aiosqlite.Row | tuple[object, ...]) -> ApiToken:
    id_, principal, roles, label, created, expires, revoked = tuple(row)
    return ApiToken(
        id=str(id_),
        principal=str(principal),
        roles=tuple(json.loads(str(roles))),
        label=None if label is None else str(label),
        created_at=float(str(created)),
        expires_at=None if expires is None else float(str(expires)),
        revoked_at=None if revoked is None else float(str(revoked)),
    )


class TokenStore:
    """The `api_tokens` table."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def create(
        self, principal: str, roles: tuple[str, ...], *, label: str | None = None, expires_in_s: float | None = None
    ) -> tuple[str, ApiToken]:
        """A new token; returns the plaintext (shown once) and its record."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        plaintext = f"{TOKEN_PREFIX}{token_id}_{secret}"
        now = time.time()
        expires = None if expires_in_s is None else now + expires_in_s
        await self.db.execute(
            "INSERT INTO api_tokens (id, secret_hash, principal, roles, label, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_id, _hash(plaintext), principal, json.dumps(list(roles)), label, now, expires),
        )
        await self.db.commit()
        return plaintext, ApiToken(token_id, principal, roles, label, now, expires, None)

    async def verify(self, token: str, *, now: float | None = None) -> ApiToken | None:
        """The active token record for `token`, or None (unknown, wrong secret, revoked, expired)."""
        shape = _SHAPE.match(token)
        if shape is None:
            return None
        async with self.db.execute(
            f"SELECT {_COLUMNS}, secret_hash FROM api_tokens WHERE id = ?",  # noqa: S608 - constant column list
            (shape.group(1),),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        *fields, stored = tuple(row)
        if not hmac.compare_digest(str(stored), _hash(token)):
            return None
        record = _row(tuple(fields))
        return record if record.active(time.time() if now is None else now) else None

    async def list(self) -> list[ApiToken]:
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at"  # noqa: S608 - constant column list
        ) as cursor:
            return [_row(row) for row in await cursor.fetchall()]

    async def revoke(self, token_id: str) -> bool:
        """Revoke by id; False if there is no such active token."""
        cursor = await self.db.execute(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), token_id)
        )
        await self.db.commit()
        return cursor.rowcount == 1

    async def roles_of(self, principal: str) -> tuple[str, ...]:
        """The roles of the principal's active tokens (for `toolkiln policy explain`)."""
        now = time.time()
        roles: set[str] = set()
        for token in await self.list():
            if token.principal == principal and token.active(now):
                roles.update(token.roles)
        return tuple(sorted(roles))
