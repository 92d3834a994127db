"""The ``feedback`` table (migration 0011): a user's rating of one turn's
answer, stored with the turn (its ``chat_history`` row, cascading), one per
turn, a new one replacing it. Users rate their own turns (tenant, user and
conversation in SQL); a tenant's admins read the tenant's feedback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from shared.errors import InvalidInput

Rating = Literal["up", "down"]
COMMENT_MAX = 2000


@dataclass(frozen=True)
class Feedback:
    rating: Rating
    comment: str | None
    wrong_source: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Rated:
    """A rating as stored, with the turn it rates (for the event)."""

    feedback: Feedback
    question: str
    answer: str
    sources: list[dict[str, Any]]
    replaced: bool


@dataclass(frozen=True)
class Entry:
    """A rating as the tenant's admins read it."""

    seq: int
    user_id: UUID
    username: str
    conversation_id: UUID
    turn: int
    feedback: Feedback
    question: str
    answer: str
    wrong: dict[str, Any] | None  # the source said to be wrong, without its text


_FEEDBACK = "f.rating, f.comment, f.wrong_source, f.created_at, f.updated_at"


def feedback_of(record: asyncpg.Record) -> Feedback | None:
    """The ``_FEEDBACK`` columns of a record (none when it has no rating)."""
    if record["rating"] is None:
        return None
    return Feedback(
        record["rating"],
        record["comment"],
        record["wrong_source"],
        record["created_at"],
        record["updated_at"],
    )


def source_ref(sources: list[dict[str, Any]], n: int | None) -> dict[str, Any] | None:
    """Source ``n`` of an answer, without its text (its place, not its content)."""
    for source in sources:
        if n is not None and source.get("n") == n:
            return {k: v for k, v in source.items() if k not in ("text", "snippet")}
    return None


async def rate(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    user_id: UUID,
    conversation_id: UUID,
    turn: int,
    *,
    rating: Rating,
    comment: str | None,
    wrong_source: int | None,
) -> Rated | None:
    """Store the rating of the caller's turn (replacing theirs); None when
    the caller has no such turn."""
    async with pool.acquire() as conn, conn.transaction():
        answered = await conn.fetchrow(
            "SELECT a.id, a.content AS answer, a.sources, q.content AS question"
            " FROM chat_history a JOIN chat_history q ON q.tenant_id = a.tenant_id"
            "  AND q.user_id = a.user_id AND q.conversation_id = a.conversation_id"
            "  AND q.turn = a.turn AND q.role = 'user'"
            " WHERE a.tenant_id = $1 AND a.user_id = $2 AND a.conversation_id = $3"
            "  AND a.turn = $4 AND a.role = 'assistant'",
            tenant_id,
            user_id,
            conversation_id,
            turn,
        )
        if answered is None:
            return None
        sources: list[dict[str, Any]] = answered["sources"]
        if wrong_source is not None and source_ref(sources, wrong_source) is None:
            raise InvalidInput(
                f"wrong_source: the answer had {len(sources)} sources, none numbered {wrong_source}"
            )
        stored = await conn.fetchrow(
            "INSERT INTO feedback AS f (history_id, tenant_id, user_id, conversation_id, turn,"  # noqa: S608
            " rating, comment, wrong_source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (history_id) DO UPDATE SET rating = EXCLUDED.rating,"
            " comment = EXCLUDED.comment, wrong_source = EXCLUDED.wrong_source,"
            " updated_at = now(), seq = nextval('feedback_seq')"
            f" RETURNING {_FEEDBACK}, NOT (f.xmax = 0) AS replaced",
            answered["id"],
            tenant_id,
            user_id,
            conversation_id,
            turn,
            rating,
            comment,
            wrong_source,
        )
    assert stored is not None  # an insert, or an update of the row it conflicts with
    feedback = feedback_of(stored)
    assert feedback is not None
    return Rated(feedback, answered["question"], answered["answer"], sources, stored["replaced"])


async def get(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, conversation_id: UUID, turn: int
) -> Feedback | None:
    record = await pool.fetchrow(
        f"SELECT {_FEEDBACK} FROM feedback f WHERE f.tenant_id = $1 AND f.user_id = $2"  # noqa: S608
        " AND f.conversation_id = $3 AND f.turn = $4",
        tenant_id,
        user_id,
        conversation_id,
        turn,
    )
    return feedback_of(record) if record else None


async def for_tenant(
    pool: asyncpg.Pool,
    tenant_id: UUID,
    *,
    rating: Rating | None,
    limit: int,
    before: int | None,
) -> list[Entry]:
    """The tenant's ratings, the most recently given first."""
    records = await pool.fetch(
        f"SELECT f.seq, f.user_id, u.username, f.conversation_id, f.turn, {_FEEDBACK},"  # noqa: S608
        " a.content AS answer, a.sources, q.content AS question"
        " FROM feedback f JOIN users u ON u.id = f.user_id"
        " JOIN chat_history a ON a.id = f.history_id"
        " JOIN chat_history q ON q.tenant_id = a.tenant_id AND q.user_id = a.user_id"
        "  AND q.conversation_id = a.conversation_id AND q.turn = a.turn AND q.role = 'user'"
        " WHERE f.tenant_id = $1 AND ($2::text IS NULL OR f.rating = $2)"
        " AND ($3::bigint IS NULL OR f.seq < $3) ORDER BY f.seq DESC LIMIT $4",
        tenant_id,
        rating,
        before,
        limit,
    )
    entries = []
    for r in records:
        feedback = feedback_of(r)
        assert feedback is not None
        entries.append(
            Entry(
                seq=r["seq"],
                user_id=r["user_id"],
                username=r["username"],
                conversation_id=r["conversation_id"],
                turn=r["turn"],
                feedback=feedback,
                question=r["question"],
                answer=r["answer"],
                wrong=source_ref(r["sources"], feedback.wrong_source),
            )
        )
    return entries
