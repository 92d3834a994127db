"""The ``users`` and ``tenants`` tables (only the gateway needs them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

import asyncpg

from shared.errors import Conflict

Role = Literal["admin", "member"]
_COLUMNS = "id, tenant_id, username, created_at, role, disabled_at"
# Only constants are interpolated into these statements.
_INSERT = (
    "INSERT INTO users (id, tenant_id, username, password_hash, role)"  # noqa: S608
    f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}"
)


@dataclass(frozen=True)
class User:
    id: UUID
    tenant_id: UUID
    username: str
    created_at: datetime
    role: Role = "member"
    disabled_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def create(
    pool: asyncpg.Pool,
    username: str,
    password_hash: str,
    *,
    tenant_id: UUID | None = None,
    role: Role = "member",
) -> User:
    """A user of ``tenant_id``; without one, a new tenant named after the
    user, which the user administers (self-registration)."""
    user_id = uuid4()
    try:
        async with pool.acquire() as conn, conn.transaction():
            if tenant_id is None:
                tenant_id, role = uuid4(), "admin"
                await conn.execute(
                    "INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, username
                )
            record = await conn.fetchrow(
                _INSERT,
                user_id, tenant_id, username, password_hash, role,
            )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise Conflict("username is already taken") from None
    assert record is not None
    return User(**dict(record))


async def get(pool: asyncpg.Pool, user_id: UUID) -> User | None:
    record = await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)  # noqa: S608
    return User(**dict(record)) if record else None


async def credentials(pool: asyncpg.Pool, username: str) -> tuple[User, str] | None:
    record = await pool.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1",  # noqa: S608
        username,
    )
    if record is None:
        return None
    data = dict(record)
    password_hash = data.pop("password_hash")
    return User(**data), password_hash
