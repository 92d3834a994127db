"""The audit log: who did what, to what, in which tenant. The gateway writes
it as part of each action; a tenant's admins read their own tenant's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from uuid import UUID

import asyncpg

from shared.storage import audit_log

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # The pool, or a connection from it in the transaction of the action.
    Db: TypeAlias = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]

Action = Literal[
    "user.registered",
    "user.created",
    "user.created_by_sso",
    "user.role_changed_by_sso",
    "user.disabled",
    "user.enabled",
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.refresh_reused",
    "key.created",
    "key.revoked",
    "document.uploaded",
    "document.deleted",
    "document.labelled",
    "document.shared",
    "document.unshared",
    "source.added",
    "source.run_requested",
    "source.removed",
    # Written by the sync workers (shared.storage.audit_log), the source's
    # owner as the actor: a file's document added, changed or renamed.
    "document.synced",
    "document.shared_with_groups",
    "group.created",
    "group.deleted",
    "group.member_added",
    "group.member_removed",
    "group.synced_by_sso",
]


@dataclass(frozen=True)
class Entry:
    id: int
    tenant_id: UUID
    actor_id: UUID | None
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    created_at: datetime


async def record(
    pool: Db,
    *,
    tenant_id: UUID,
    actor_id: UUID | None,
    action: Action,
    target: str | UUID | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """One entry. ``detail`` must never hold a secret (a password, a token,
    a key): the log is shown to people."""
    await audit_log.append(
        pool,
        tenant_id=tenant_id,
        actor_id=actor_id,
        action=action,
        target=target,
        detail=detail or {},
        ip=ip,
    )


async def list_for(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
) -> list[Entry]:
    """Newest first; ``before_id`` pages back."""
    rows = await pool.fetch(
        "SELECT id, tenant_id, actor_id, action, target, detail, ip, created_at FROM audit_log"
        " WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2)"
        " AND ($3::text IS NULL OR action = $3) ORDER BY id DESC LIMIT $4",
        tenant_id,
        before_id,
        action,
        limit,
    )
    return [Entry(**{**dict(row), "detail": audit_log.detail_of(row["detail"])}) for row in rows]
