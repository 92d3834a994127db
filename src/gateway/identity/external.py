"""The ragstream user of a provider's user (``external_identities``).

Found by the provider's issuer and the token's ``sub``, never by a name; a
user signing in for the first time is created then, in the tenant the
token names (created too if new). A disabled user stays refused whatever
the provider says; a user stays in the tenant they were created in (a token
naming another is refused, not obeyed). With OIDC_ADMIN_GROUP set, the
role follows the token's groups at each request (written only when it
changes). So do the user's claim memberships of their tenant's groups
(``shared.storage.groups.sync_claim``: one read when nothing changed)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID, uuid4

import asyncpg
import structlog

from gateway.identity import audit
from gateway.identity.oidc import ExternalClaims
from gateway.identity.users import Role, User
from shared.errors import AuthError
from shared.storage import groups

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

# Only constants are interpolated into these statements.
_FIND = (
    "SELECT u.id, u.tenant_id, u.username, u.created_at, u.role, u.disabled_at,"
    " t.name AS tenant_name FROM external_identities e JOIN users u ON u.id = e.user_id"
    " JOIN tenants t ON t.id = u.tenant_id WHERE e.issuer = $1 AND e.subject = $2"
)
_INSERT_USER = (
    "INSERT INTO users (id, tenant_id, username, password_hash, role)"
    " VALUES ($1, $2, $3, NULL, $4)"
    " RETURNING id, tenant_id, username, created_at, role, disabled_at"
)


def role_of(claims: ExternalClaims, admin_group: str | None) -> Role | None:
    """The role the token's groups give; None when roles are not mapped."""
    if admin_group is None:
        return None
    return "admin" if admin_group in claims.groups else "member"


async def user_for(
    pool: asyncpg.Pool, claims: ExternalClaims, admin_group: str | None, ip: str | None
) -> User:
    """The user the verified ``claims`` name, created at the first sign-in;
    AuthError for a disabled user or a tenant that changed."""
    wanted = role_of(claims, admin_group)
    user = await _existing(pool, claims)
    if user is None:
        user = await _created(pool, claims, wanted or "member", ip)
    if user.disabled_at is not None:
        raise AuthError("Invalid token")
    if wanted is not None and user.role != wanted:
        await pool.execute("UPDATE users SET role = $2 WHERE id = $1", user.id, wanted)
        await audit.record(
            pool,
            tenant_id=user.tenant_id,
            actor_id=user.id,
            action="user.role_changed_by_sso",
            target=user.id,
            detail={"role": wanted},
            ip=ip,
        )
        log.info("Role changed by the provider's groups", user_id=str(user.id), role=wanted)
        user = User(user.id, user.tenant_id, user.username, user.created_at, wanted, None)
    if claims.groups_claimed:
        await _sync_groups(pool, user, claims, ip)
    return user


async def _sync_groups(
    pool: asyncpg.Pool, user: User, claims: ExternalClaims, ip: str | None
) -> None:
    """The user's claim memberships become the token's groups, in the user's
    own tenant (a name is never looked up in another tenant); audited when
    they change. The membership triggers outdate cached answers."""
    async with pool.acquire() as conn, conn.transaction():
        change = await groups.sync_claim(conn, user.tenant_id, user.id, claims.groups)
        if change.changed:
            await audit.record(
                conn,
                tenant_id=user.tenant_id,
                actor_id=user.id,
                action="group.synced_by_sso",
                target=user.id,
                detail={"joined": change.joined, "left": change.left},
                ip=ip,
            )
    if change.changed:
        log.info(
            "Groups changed by the provider's claim",
            user_id=str(user.id),
            joined=len(change.joined),
            left=len(change.left),
        )


async def _existing(pool: asyncpg.Pool, claims: ExternalClaims) -> User | None:
    record = await pool.fetchrow(_FIND, claims.issuer, claims.subject)
    if record is None:
        return None
    data = dict(record)
    if data.pop("tenant_name") != claims.tenant:
        log.warning("Provider token names another tenant than its user's", user_id=str(data["id"]))
        raise AuthError("Invalid token")
    return User(**data)


async def _created(pool: asyncpg.Pool, claims: ExternalClaims, role: Role, ip: str | None) -> User:
    """A new user (and, if new, tenant) for ``claims``, in one transaction.
    Two first requests at once: the second finds the first's user."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            tenant_id = await _tenant(conn, claims.tenant)
            record = await conn.fetchrow(_INSERT_USER, uuid4(), tenant_id, claims.username, role)
            assert record is not None
            await conn.execute(
                "INSERT INTO external_identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
                claims.issuer,
                claims.subject,
                record["id"],
            )
    except asyncpg.UniqueViolationError:
        again = await _existing(pool, claims)
        if again is not None:
            return again
        # The username is a local account's (or another provider user's):
        # never linked to it by name, which would hand that account over.
        log.warning("Single sign-on refused: the username is taken", tenant=claims.tenant)
        raise AuthError("Invalid token: the username is taken by another account") from None
    user = User(**dict(record))
    await audit.record(
        pool,
        tenant_id=user.tenant_id,
        actor_id=user.id,
        action="user.created_by_sso",
        target=user.id,
        detail={"username": user.username, "issuer": claims.issuer, "role": role},
        ip=ip,
    )
    log.info("User created at first single sign-on", user_id=str(user.id))
    return user


async def _tenant(conn: PoolConnectionProxy[asyncpg.Record], name: str) -> UUID:
    """The tenant named ``name``, created if there is none."""
    created = await conn.fetchval(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
        uuid4(),
        name,
    )
    if created is None:
        created = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", name)
    return UUID(str(created))
