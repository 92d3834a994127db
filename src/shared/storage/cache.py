"""Redis keys shared by the services that write and read cached answers.

Answers are cached per tenant under a generation number; anything that
changes a tenant's corpus (a document indexed or deleted) bumps it, so stale
answers are never served and no per-key invalidation is needed.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from redis.asyncio import Redis


def _generation_key(tenant_id: UUID) -> str:
    return f"rag:corpus-generation:{tenant_id}"


async def corpus_generation(redis: Redis, tenant_id: UUID) -> int:
    return int(await redis.get(_generation_key(tenant_id)) or 0)


async def bump_corpus_generation(redis: Redis, tenant_id: UUID) -> None:
    await redis.incr(_generation_key(tenant_id))


def answer_key(tenant_id: UUID, user_id: UUID, generation: int, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f"rag:answer:{tenant_id}:{user_id}:{generation}:{digest}"
