"""Keys of the answer cache, shared by the services that write and read
cached answers.

Answers are cached in Redis per tenant under a generation number kept in
PostgreSQL (``tenants.answer_generation``). Triggers bump it in the same
transaction as anything that changes what the tenant's users can read (a
document indexed, deleted, re-indexed, shared or unshared; migration 0006),
so a change is never committed without its invalidation, and stale answers
are never served (no per-key invalidation is needed).
"""

from __future__ import annotations

import hashlib
from uuid import UUID

import asyncpg

_GENERATION = "SELECT answer_generation FROM tenants WHERE id = $1"


async def answer_generation(pool: asyncpg.Pool, tenant_id: UUID) -> int:
    generation = await pool.fetchval(_GENERATION, tenant_id)
    return int(generation or 0)


async def bump_answer_generation(pool: asyncpg.Pool, tenant_id: UUID) -> None:
    """For a change the triggers cannot see whole: the vector store's copy
    of a document's visibility is written after its row (and its trigger)."""
    await pool.execute(
        "UPDATE tenants SET answer_generation = answer_generation + 1 WHERE id = $1", tenant_id
    )


def answer_key(tenant_id: UUID, user_id: UUID, generation: int, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f"rag:answer:{tenant_id}:{user_id}:{generation}:{digest}"
