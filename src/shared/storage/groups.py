"""A tenant's groups, their members, and the documents shared with them.

A group belongs to one tenant (migration 0014 ties every link to the tenant
of both its ends). Its members are made by the tenant's admins (origin
``admin``) or by the groups claim of a single sign-on (origin ``claim``,
rewritten whole at each sign-in). A document whose visibility is ``groups``
is read by its owner and by the members of its groups, as the rows say at
the moment of the read: every reader (the documents routes, the BM25 SQL,
the dense re-check, the document events) asks PostgreSQL, never a list a
client sent or a copy kept elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeAlias
from uuid import UUID, uuid4

import asyncpg

from shared.errors import Conflict, Forbidden, InvalidInput

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"
Origin = Literal["local", "claim"]
MemberOrigin = Literal["admin", "claim"]

MAX_NAME = 100
# A claim naming more groups than this is cut (the first ones, sorted): it
# bounds the work a sign-in does, whatever the provider sends.
MAX_CLAIM_GROUPS = 200
MAX_SHARED_GROUPS = 50
NAME_RULE = f"1 to {MAX_NAME} characters, no control characters; compared ignoring case"
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


def readable_clause(doc: str, tenant: str = "$1", user: str = "$2") -> str:
    """SQL: the document row ``doc`` (a table or alias) is readable by the
    user ``user`` of the tenant ``tenant``: theirs, shared with the tenant, or
    shared with a group they are in (now). Only our constants are given."""
    return (
        f"{doc}.tenant_id = {tenant} AND ({doc}.user_id = {user} OR {doc}.visibility = 'tenant'"  # noqa: S608
        f" OR ({doc}.visibility = 'groups' AND EXISTS (SELECT 1 FROM document_groups dg"
        " JOIN group_members gm ON gm.group_id = dg.group_id"
        f" WHERE dg.document_id = {doc}.id AND gm.user_id = {user})))"
    )


def clean_name(name: str) -> str:
    """A group name as stored, or ``InvalidInput`` saying why not."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME or _BAD_NAME.search(cleaned):
        raise InvalidInput(f"invalid group name {name[:MAX_NAME]!r}: {NAME_RULE}")
    return cleaned


def valid_claim_names(names: Iterable[str]) -> list[str]:
    """The claim's group names that make valid groups, one per name ignoring
    case, sorted, at most MAX_CLAIM_GROUPS; the others are skipped."""
    kept: dict[str, str] = {}
    for name in names:
        try:
            cleaned = clean_name(name)
        except InvalidInput:
            continue
        kept.setdefault(cleaned.lower(), cleaned)
    return [kept[key] for key in sorted(kept)][:MAX_CLAIM_GROUPS]


@dataclass(frozen=True)
class Group:
    id: UUID
    name: str
    origin: Origin
    created_at: datetime
    members: int = 0


@dataclass(frozen=True)
class Member:
    user_id: UUID
    username: str
    origins: list[MemberOrigin]


_GROUP = (
    "SELECT g.id, g.name, g.origin, g.created_at,"
    " (SELECT count(DISTINCT m.user_id) FROM group_members m WHERE m.group_id = g.id) AS members"
    " FROM groups g"
)


def _group(record: asyncpg.Record) -> Group:
    return Group(**dict(record))


async def create(db: Db, tenant_id: UUID, name: str, origin: Origin = "local") -> Group:
    """A new group of the tenant; ``Conflict`` if the name is taken (ignoring case)."""
    try:
        record = await db.fetchrow(
            "INSERT INTO groups (id, tenant_id, name, origin) VALUES ($1, $2, $3, $4)"
            " RETURNING id, name, origin, created_at, 0::bigint AS members",
            uuid4(),
            tenant_id,
            clean_name(name),
            origin,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"your organisation already has a group named {name.strip()!r}") from None
    assert record is not None
    return _group(record)


async def in_tenant(db: Db, tenant_id: UUID) -> list[Group]:
    records = await db.fetch(
        f"{_GROUP} WHERE g.tenant_id = $1 ORDER BY lower(g.name)",
        tenant_id,
    )
    return [_group(r) for r in records]


async def get(db: Db, tenant_id: UUID, group_id: UUID) -> Group | None:
    record = await db.fetchrow(
        f"{_GROUP} WHERE g.tenant_id = $1 AND g.id = $2",
        tenant_id,
        group_id,
    )
    return _group(record) if record else None


async def delete(db: Db, tenant_id: UUID, group_id: UUID) -> Group | None:
    """Delete the group, its memberships and its shares (by cascade, each
    bumping the answer cache's generation); the group, or None."""
    group = await get(db, tenant_id, group_id)
    if group is not None:
        await db.execute("DELETE FROM groups WHERE id = $1 AND tenant_id = $2", group_id, tenant_id)
    return group


async def of_user(db: Db, tenant_id: UUID, user_id: UUID) -> list[Group]:
    """The groups the user is a member of (by any origin), by name."""
    records = await db.fetch(
        f"{_GROUP} WHERE g.tenant_id = $1 AND EXISTS (SELECT 1 FROM group_members m"  # noqa: S608
        " WHERE m.group_id = g.id AND m.user_id = $2) ORDER BY lower(g.name)",
        tenant_id,
        user_id,
    )
    return [_group(r) for r in records]


async def ids_of_user(db: Db, tenant_id: UUID, user_id: UUID) -> list[UUID]:
    """The ids of the user's groups, now: what a search's vector filter needs."""
    rows = await db.fetch(
        "SELECT DISTINCT group_id FROM group_members WHERE tenant_id = $1 AND user_id = $2"
        " ORDER BY group_id",
        tenant_id,
        user_id,
    )
    return [row["group_id"] for row in rows]


async def members(db: Db, tenant_id: UUID, group_id: UUID) -> list[Member]:
    rows = await db.fetch(
        "SELECT u.id AS user_id, u.username, array_agg(m.origin ORDER BY m.origin) AS origins"
        " FROM group_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.tenant_id = $1 AND m.group_id = $2 GROUP BY u.id, u.username"
        " ORDER BY u.username",
        tenant_id,
        group_id,
    )
    return [Member(row["user_id"], row["username"], list(row["origins"])) for row in rows]


async def add_member(
    db: Db, tenant_id: UUID, group_id: UUID, user_id: UUID, origin: MemberOrigin = "admin"
) -> bool:
    """Make the user (of the tenant) a member; whether both exist in the
    tenant. Adding an existing membership changes nothing."""
    found = await db.fetchval(
        "SELECT (SELECT count(*) FROM groups WHERE id = $1 AND tenant_id = $3)"
        " + (SELECT count(*) FROM users WHERE id = $2 AND tenant_id = $3)",
        group_id,
        user_id,
        tenant_id,
    )
    if found != 2:
        return False
    await db.execute(
        "INSERT INTO group_members (group_id, user_id, tenant_id, origin)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        group_id,
        user_id,
        tenant_id,
        origin,
    )
    return True


async def remove_member(db: Db, tenant_id: UUID, group_id: UUID, user_id: UUID) -> bool:
    """End every membership of the user in the group, whoever made it;
    whether there was one. (A claim membership comes back at the user's
    next sign-in if the provider still says so: the provider is its source.)"""
    result: str = await db.execute(
        "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3",
        tenant_id,
        group_id,
        user_id,
    )
    return result != "DELETE 0"


async def shareable(
    db: Db, tenant_id: UUID, user_id: UUID, names: Collection[str], *, admin: bool
) -> list[UUID]:
    """The ids of the tenant's groups ``names`` that the user may share a
    document with: groups they are in (an admin: any of the tenant's).
    ``InvalidInput`` for a name the tenant has no group of, ``Forbidden``
    for a group the user is not in."""
    if not names:
        raise InvalidInput("visibility 'groups' needs at least one group")
    if len(names) > MAX_SHARED_GROUPS:
        raise InvalidInput(f"a document may be shared with at most {MAX_SHARED_GROUPS} groups")
    wanted = {clean_name(name).lower(): name for name in names}
    rows = await db.fetch(
        "SELECT g.id, lower(g.name) AS key, EXISTS (SELECT 1 FROM group_members m"
        " WHERE m.group_id = g.id AND m.user_id = $3) AS member"
        " FROM groups g WHERE g.tenant_id = $1 AND lower(g.name) = ANY($2::text[])"
        # Held to the caller's transaction's end: a group cannot be deleted
        # between this check and the links the caller then writes.
        " FOR KEY SHARE OF g",
        tenant_id,
        list(wanted),
        user_id,
    )
    found = {row["key"]: row for row in rows}
    unknown = sorted(wanted[key] for key in wanted if key not in found)
    if unknown:
        raise InvalidInput(f"your organisation has no group named {', '.join(map(repr, unknown))}")
    outside = sorted(wanted[key] for key, row in found.items() if not (admin or row["member"]))
    if outside:
        raise Forbidden(
            f"you may share only with groups you are in; not in {', '.join(map(repr, outside))}"
        )
    return sorted(row["id"] for row in rows)


async def set_document_groups(
    db: Db, tenant_id: UUID, document_id: UUID, group_ids: Collection[UUID]
) -> bool:
    """Make the document's groups exactly ``group_ids`` (empty: none), inside
    the caller's transaction; whether anything changed."""
    removed: str = await db.execute(
        "DELETE FROM document_groups WHERE document_id = $1 AND NOT (group_id = ANY($2::uuid[]))",
        document_id,
        list(group_ids),
    )
    added: str = await db.execute(
        "INSERT INTO document_groups (document_id, group_id, tenant_id)"
        " SELECT $1::uuid, g, $3::uuid FROM unnest($2::uuid[]) AS g ON CONFLICT DO NOTHING",
        document_id,
        list(group_ids),
        tenant_id,
    )
    return removed != "DELETE 0" or added != "INSERT 0 0"


async def names_by_id(db: Db, group_ids: Collection[UUID]) -> dict[UUID, str]:
    """The names of those of ``group_ids`` that exist."""
    if not group_ids:
        return {}
    rows = await db.fetch("SELECT id, name FROM groups WHERE id = ANY($1::uuid[])", list(group_ids))
    return {row["id"]: row["name"] for row in rows}


async def of_document(db: Db, document_id: UUID) -> list[UUID]:
    """The ids of the groups the document is shared with, sorted."""
    rows = await db.fetch(
        "SELECT group_id FROM document_groups WHERE document_id = $1 ORDER BY group_id",
        document_id,
    )
    return [row["group_id"] for row in rows]


async def names_of_documents(db: Db, document_ids: Collection[UUID]) -> dict[UUID, list[str]]:
    """The names of each document's groups (documents without any: absent)."""
    if not document_ids:
        return {}
    rows = await db.fetch(
        "SELECT dg.document_id, array_agg(g.name ORDER BY lower(g.name)) AS names"
        " FROM document_groups dg JOIN groups g ON g.id = dg.group_id"
        " WHERE dg.document_id = ANY($1::uuid[]) GROUP BY dg.document_id",
        list(document_ids),
    )
    return {row["document_id"]: list(row["names"]) for row in rows}


async def readers_among(db: Db, document_id: UUID, user_ids: Collection[UUID]) -> set[UUID]:
    """Which of ``user_ids`` are, now, in a group the document is shared with."""
    if not user_ids:
        return set()
    rows = await db.fetch(
        "SELECT DISTINCT m.user_id FROM document_groups dg"
        " JOIN group_members m ON m.group_id = dg.group_id"
        " WHERE dg.document_id = $1 AND m.user_id = ANY($2::uuid[])",
        document_id,
        list(user_ids),
    )
    return {row["user_id"] for row in rows}


@dataclass(frozen=True)
class ClaimSync:
    joined: list[str]
    left: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left)


async def sync_claim(db: Db, tenant_id: UUID, user_id: UUID, names: Iterable[str]) -> ClaimSync:
    """Make the user's claim memberships exactly the claim's groups ``names``
    (made, as origin ``claim``, in the user's tenant when new), inside the
    caller's transaction; memberships an admin made are left alone. A name
    is looked up in the user's own tenant only, so a claim naming another
    tenant's group makes or joins a group of this one, never that one."""
    wanted = valid_claim_names(names)
    keys = [name.lower() for name in wanted]
    current = await db.fetchval(
        "SELECT coalesce(array_agg(lower(g.name) ORDER BY lower(g.name)), '{}')"
        " FROM group_members m JOIN groups g ON g.id = m.group_id"
        " WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.origin = 'claim'",
        tenant_id,
        user_id,
    )
    if sorted(current) == sorted(keys):
        return ClaimSync([], [])  # the usual case: one read, no write
    if wanted:
        await db.execute(
            "INSERT INTO groups (id, tenant_id, name, origin)"
            " SELECT gen_random_uuid(), $1::uuid, n, 'claim' FROM unnest($2::text[]) AS n"
            " ON CONFLICT (tenant_id, lower(name)) DO NOTHING",
            tenant_id,
            wanted,
        )
    left = await db.fetch(
        "DELETE FROM group_members m USING groups g WHERE g.id = m.group_id"
        " AND m.tenant_id = $1 AND m.user_id = $2 AND m.origin = 'claim'"
        " AND NOT (lower(g.name) = ANY($3::text[])) RETURNING g.name",
        tenant_id,
        user_id,
        keys,
    )
    joined = await db.fetch(
        "INSERT INTO group_members (group_id, user_id, tenant_id, origin)"
        " SELECT g.id, $2::uuid, $1::uuid, 'claim' FROM groups g"
        " WHERE g.tenant_id = $1 AND lower(g.name) = ANY($3::text[])"
        " ON CONFLICT DO NOTHING RETURNING (SELECT name FROM groups WHERE id = group_id)",
        tenant_id,
        user_id,
        keys,
    )
    return ClaimSync(sorted(r[0] for r in joined), sorted(r[0] for r in left))
