"""Refresh-token families: the server-side half of a login.

A login starts a family; each refresh token (its ``jti`` in
``refresh_tokens``) may be exchanged once, for a new pair in the same family.
Presenting a used one means two parties hold the family's tokens (one of them
stole it), so the whole family is revoked. Logout revokes the family too.
Access tokens name their family (``fam``) and ``gateway.http.deps`` checks it on
every request, so revoking a family also ends its access tokens at once.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, TypeAlias
from uuid import UUID, uuid4

import asyncpg

from gateway.identity.security import Claims, TokenPair, Tokens
from gateway.identity.users import User
from shared.errors import AuthError

# What the statements here run on: the pool, or one connection in a transaction.
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Db: TypeAlias = asyncpg.Pool | PoolConnectionProxy[asyncpg.Record]


class Refused(Enum):
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    REUSED = "reused"


async def _store(conn: Db, pair: TokenPair, family_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (jti, family_id, expires_at) VALUES ($1, $2, $3)",
        pair.refresh_jti,
        family_id,
        pair.refresh_expires_at,
    )


async def start(pool: asyncpg.Pool, tokens: Tokens, user: User) -> TokenPair:
    """A new family and its first pair."""
    family_id = uuid4()
    pair = tokens.issue(user.id, user.tenant_id, family_id)
    async with pool.acquire() as conn, conn.transaction():
        # Forget this user's families whose refresh tokens have all expired:
        # nothing can use them any more, and the tables stay small.
        await conn.execute(
            "DELETE FROM token_families f WHERE f.user_id = $1 AND NOT EXISTS"
            " (SELECT 1 FROM refresh_tokens r WHERE r.family_id = f.id AND r.expires_at > now())",
            user.id,
        )
        await conn.execute(
            "INSERT INTO token_families (id, user_id) VALUES ($1, $2)", family_id, user.id
        )
        await _store(conn, pair, family_id)
    return pair


async def rotate(pool: asyncpg.Pool, tokens: Tokens, claims: Claims) -> TokenPair | Refused:
    """Exchange the refresh token ``claims`` describes for a new pair, or
    say why not. A reuse revokes the family, and that is committed even
    though the caller then answers 401."""
    async with pool.acquire() as conn, conn.transaction():
        # FOR UPDATE: of two concurrent refreshes with one token, the second
        # waits and then sees it used.
        row = await conn.fetchrow(
            "SELECT r.used_at, f.revoked_at FROM refresh_tokens r"
            " JOIN token_families f ON f.id = r.family_id"
            " WHERE r.jti = $1 AND f.id = $2 AND f.user_id = $3 FOR UPDATE OF r, f",
            claims.jti,
            claims.family_id,
            claims.user_id,
        )
        if row is None:
            return Refused.UNKNOWN
        if row["revoked_at"] is not None:
            return Refused.REVOKED
        if row["used_at"] is not None:
            await revoke(conn, claims.family_id, "reuse")
            return Refused.REUSED
        await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE jti = $1", claims.jti)
        pair = tokens.issue(claims.user_id, claims.tenant_id, claims.family_id)
        await _store(conn, pair, claims.family_id)
    return pair


async def revoke(conn: Db, family_id: UUID, reason: str) -> None:
    """Idempotent. ``family_id`` comes from a signed token, so it is the
    token holder's own."""
    await conn.execute(
        "UPDATE token_families SET revoked_at = now(), revoked_reason = $2"
        " WHERE id = $1 AND revoked_at IS NULL",
        family_id,
        reason,
    )


async def check_active(pool: asyncpg.Pool, family_id: UUID, user_id: UUID) -> None:
    """AuthError unless the family exists, is ``user_id``'s and is not
    revoked: one primary-key lookup per request."""
    active = await pool.fetchval(
        "SELECT revoked_at IS NULL FROM token_families WHERE id = $1 AND user_id = $2",
        family_id,
        user_id,
    )
    if not active:
        raise AuthError("Invalid token")
