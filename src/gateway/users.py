"""The ``users`` table (only the gateway needs it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from shared.errors import Conflict


@dataclass(frozen=True)
class User:
    id: UUID
    tenant_id: UUID
    username: str
    created_at: datetime


async def create(pool: asyncpg.Pool, username: str, password_hash: str) -> User:
    user_id = uuid4()
    try:
        record = await pool.fetchrow(
            "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $2, $3, $4)"
            " RETURNING id, tenant_id, username, created_at",
            user_id,
            # Every user is a tenant of their own until organisations exist.
            user_id,
            username,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict("username is already taken") from None
    assert record is not None
    return User(**dict(record))


async def get(pool: asyncpg.Pool, user_id: UUID) -> User | None:
    record = await pool.fetchrow(
        "SELECT id, tenant_id, username, created_at FROM users WHERE id = $1", user_id
    )
    return User(**dict(record)) if record else None


async def credentials(pool: asyncpg.Pool, username: str) -> tuple[User, str] | None:
    record = await pool.fetchrow(
        "SELECT id, tenant_id, username, created_at, password_hash FROM users WHERE username = $1",
        username,
    )
    if record is None:
        return None
    data = dict(record)
    password_hash = data.pop("password_hash")
    return User(**data), password_hash
