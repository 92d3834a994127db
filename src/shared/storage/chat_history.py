"""The ``chat_history`` table: one row per turn, scoped by tenant and user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class Turn:
    conversation_id: UUID
    correlation_id: str
    role: Literal["user", "assistant"]
    content: str
    sources: list[dict[str, Any]]
    created_at: datetime


async def append_exchange(
    pool: asyncpg.Pool,
    *,
    tenant_id: UUID,
    user_id: UUID,
    conversation_id: UUID,
    correlation_id: str,
    question: str,
    answer: str,
    sources: list[dict[str, Any]],
) -> int:
    """Store a question and its answer together, or neither; the turn they
    were filed as in their conversation (which the insert trigger creates,
    or counts them in, migration 0010)."""
    insert = (
        "INSERT INTO chat_history (tenant_id, user_id, conversation_id, correlation_id,"
        " role, content, sources) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING turn"
    )
    async with pool.acquire() as conn, conn.transaction():
        # The question first: its row takes the turn the answer's row shares.
        turn: int = await conn.fetchval(
            insert, tenant_id, user_id, conversation_id, correlation_id, "user", question, []
        )
        await conn.execute(
            insert,
            tenant_id,
            user_id,
            conversation_id,
            correlation_id,
            "assistant",
            answer,
            sources,
        )
    return turn


async def list_turns(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    user_id: UUID,
    *,
    conversation_id: UUID | None,
    limit: int,
) -> list[Turn]:
    records = await pool.fetch(
        "SELECT conversation_id, correlation_id, role, content, sources, created_at"
        " FROM (SELECT * FROM chat_history WHERE tenant_id=$1 AND user_id=$2"
        "       AND ($3::uuid IS NULL OR conversation_id=$3) ORDER BY id DESC LIMIT $4) recent"
        " ORDER BY id",
        tenant_id,
        user_id,
        conversation_id,
        limit,
    )
    return [Turn(**dict(r)) for r in records]
