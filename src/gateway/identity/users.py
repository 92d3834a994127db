"""The ``users`` and ``tenants`` tables (only the gateway needs them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID, uuid4

import asyncpg

from shared.errors import Conflict

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

Role = Literal["admin", "member"]
SELF_REGISTERED_PREFIX = "self-"
_COLUMNS = "id, tenant_id, username, created_at, role, disabled_at"
# Only constants are interpolated into these statements.
_INSERT = (
    "INSERT INTO users (id, tenant_id, username, password_hash, role)"  # noqa: S608
    f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}"
)
# The tenant is part of the condition: another tenant's user is not found.
_SET_DISABLED = (
    "UPDATE users SET disabled_at = CASE WHEN $3 THEN coalesce(disabled_at, now()) END"  # noqa: S608
    f" WHERE id = $1 AND tenant_id = $2 RETURNING {_COLUMNS}"
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


def self_registered_name(tenant_id: UUID) -> str:
    """The name of a self-registered tenant: made of its random id."""
    return f"{SELF_REGISTERED_PREFIX}{tenant_id}"


async def create(
    pool: asyncpg.Pool,
    username: str,
    password_hash: str,
    *,
    tenant_id: UUID | None = None,
    role: Role = "member",
) -> User:
    """A user of ``tenant_id``; without one, a new tenant which the user
    administers (self-registration), named ``self-<its id>``: never after
    anything the caller chose, so no tenant an operator creates by name later
    (``rag user create --tenant acme``) can turn out to be the
    self-registered user's, with them as its admin."""
    user_id = uuid4()
    try:
        async with pool.acquire() as conn, conn.transaction():
            if tenant_id is None:
                tenant_id, role = uuid4(), "admin"
                await conn.execute(
                    "INSERT INTO tenants (id, name) VALUES ($1, $2)",
                    tenant_id,
                    self_registered_name(tenant_id),
                )
            record = await conn.fetchrow(
                _INSERT,
                user_id,
                tenant_id,
                username,
                password_hash,
                role,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict("username is already taken") from None
    assert record is not None
    return User(**dict(record))


async def get(pool: asyncpg.Pool, user_id: UUID) -> User | None:
    record = await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)  # noqa: S608
    return User(**dict(record)) if record else None


async def credentials(pool: asyncpg.Pool, username: str) -> tuple[User, str | None] | None:
    record = await pool.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1",  # noqa: S608
        username,
    )
    if record is None:
        return None
    data = dict(record)
    password_hash = data.pop("password_hash")
    return User(**data), password_hash


async def in_tenant(pool: asyncpg.Pool, tenant_id: UUID) -> list[User]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY created_at, username",  # noqa: S608
        tenant_id,
    )
    return [User(**dict(row)) for row in rows]


async def set_disabled(
    conn: PoolConnectionProxy[asyncpg.Record], tenant_id: UUID, user_id: UUID, *, disabled: bool
) -> User | None:
    """Disable or enable ``user_id`` if it is a user of ``tenant_id``; None
    otherwise, so another tenant's user looks exactly like a missing one.
    Disabling also ends the user's login sessions: re-enabling an account
    (perhaps disabled because it was stolen) must not revive its refresh
    tokens, so the user signs in again."""
    record = await conn.fetchrow(_SET_DISABLED, user_id, tenant_id, disabled)
    if record is not None and disabled:
        await conn.execute(
            "UPDATE token_families SET revoked_at = now(), revoked_reason = 'disabled'"
            " WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
        )
    return User(**dict(record)) if record else None


async def create_in_tenant_named(
    pool: asyncpg.Pool, username: str, password_hash: str, tenant: str, role: Role
) -> tuple[User, bool]:
    """A user of tenant ``tenant`` (by name), the tenant created if there is
    none; and whether it was. One transaction: a taken username leaves no
    empty tenant behind."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            tenant_id = await conn.fetchval(
                "INSERT INTO tenants (id, name) VALUES ($1, $2)"
                " ON CONFLICT (name) DO NOTHING RETURNING id",
                uuid4(),
                tenant,
            )
            created = tenant_id is not None
            if not created:
                tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant)
            record = await conn.fetchrow(_INSERT, uuid4(), tenant_id, username, password_hash, role)
    except asyncpg.UniqueViolationError:
        raise Conflict("username is already taken") from None
    assert record is not None
    return User(**dict(record)), created
