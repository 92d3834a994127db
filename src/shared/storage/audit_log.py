"""Entries of the audit log written outside the gateway: the sync workers
record what folder sync did to a tenant's documents, as the gateway records
what its users did (``gateway.identity.audit``, which reads the log too)."""

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
    target: UUID,
    detail: dict[str, Any],
) -> None:
    """One entry (no client address: no client asked)."""
    await db.execute(
        "INSERT INTO audit_log (tenant_id, actor_id, action, target, detail)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)",
        tenant_id,
        actor_id,
        action,
        str(target),
        json.dumps(detail),
    )
