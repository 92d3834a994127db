"""API keys: long-lived credentials for services, created and revoked by a
user, sent as ``Authorization: Bearer rsk_…`` and acting as that user.

The key is shown once, at creation; only its SHA-256 is stored. A fast hash
is right here, unlike for passwords: a key is 32 random bytes, so there is
nothing to guess by brute force, and a fast hash lets every request look the
key up by its hash (unique index) instead of running argon2.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from gateway.identity.users import User
from shared.contracts.events import utcnow
from shared.errors import AuthError, Forbidden

KEY_PREFIX = "rsk_"
# Enough to recognise a key in a list; far too little to guess the rest.
_SHOWN = len(KEY_PREFIX) + 8
# A stolen session must not mint keys without limit.
MAX_ACTIVE_KEYS = 50
# last_used_at is advisory: one write a minute per key, not one per request.
_TOUCH_EVERY = timedelta(minutes=1)
_COLUMNS = "id, name, prefix, created_at, last_used_at, revoked_at"
# Only constants are interpolated into these statements.
_INSERT = (
    "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash)"  # noqa: S608
    f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}"
)


@dataclass(frozen=True)
class ApiKey:
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def is_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create(pool: asyncpg.Pool, user: User, name: str) -> tuple[ApiKey, str]:
    """The new key's row and the key itself (the only time it exists in
    clear text)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        # Serialise one user's creations so the cap holds under concurrency.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user.id)
        active = await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL", user.id
        )
        if active >= MAX_ACTIVE_KEYS:
            raise Forbidden(f"at most {MAX_ACTIVE_KEYS} active API keys; revoke one first")
        row = await conn.fetchrow(
            _INSERT, uuid4(), user.tenant_id, user.id, name, key[:_SHOWN], _digest(key)
        )
    assert row is not None
    return ApiKey(**dict(row)), key


async def list_for(pool: asyncpg.Pool, user_id: UUID) -> list[ApiKey]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY created_at",  # noqa: S608
        user_id,
    )
    return [ApiKey(**dict(row)) for row in rows]


async def revoke(pool: asyncpg.Pool, user_id: UUID, key_id: UUID) -> bool:
    """False when ``user_id`` has no such key (whoever else may have it)."""
    found = await pool.fetchval(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = $1 AND user_id = $2 RETURNING id",
        key_id,
        user_id,
    )
    return found is not None


async def authenticate(pool: asyncpg.Pool, key: str) -> User:
    """The user a live key belongs to; tenant and user come from the key's
    row, never from the request."""
    row = await pool.fetchrow(
        "SELECT k.id AS key_id, k.last_used_at, u.id, u.tenant_id, u.username, u.created_at,"
        " u.role, u.disabled_at FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND u.tenant_id = k.tenant_id",
        _digest(key),
    )
    if row is None or row["disabled_at"] is not None:
        raise AuthError("Invalid API key")
    data = dict(row)
    key_id, last_used = data.pop("key_id"), data.pop("last_used_at")
    if last_used is None or utcnow() - last_used > _TOUCH_EVERY:
        await pool.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", key_id)
    return User(**data)
