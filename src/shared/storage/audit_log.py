"""Writing and reading audit log entries: the gateway records what its users
did (``gateway.identity.audit``, which names the actions), the sync workers
what folder sync did to a tenant's documents.

``detail`` is sent as text cast to jsonb, so it is stored as a JSON object
whatever codecs the connection has (the pool's jsonb codec would encode an
encoded string again). Entries written before that fix hold a JSON string;
``detail_of`` reads both."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from shared.storage.documents import Db


async def append(
    db: Db,
    *,
    tenant_id: UUID,
    actor_id: UUID | None,
    action: str,
    target: str | UUID | None,
    detail: dict[str, Any],
    ip: str | None = None,
) -> None:
    """One entry (``ip``: the client's address, when a client asked)."""
    await db.execute(
        "INSERT INTO audit_log (tenant_id, actor_id, action, target, detail, ip)"
        " VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)",
        tenant_id,
        actor_id,
        action,
        str(target) if target is not None else None,
        json.dumps(detail),
        ip,
    )


def detail_of(stored: object) -> dict[str, Any]:
    """An entry's detail as read (an object, or the JSON string of one)."""
    while isinstance(stored, str | bytes):
        stored = json.loads(stored)
    return stored if isinstance(stored, dict) else {}
