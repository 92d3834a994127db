"""The ``conversations`` table: a user's conversations, each with its title,
number of turns and last activity (kept by a trigger on ``chat_history``,
migration 0010), and its turns as question-and-answer pairs.

Every query names the tenant and the user: a conversation id names a
conversation of its user only, and another user's id is simply not there."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.errors import InvalidInput
from shared.storage.feedback import Feedback, feedback_of


@dataclass(frozen=True)
class Conversation:
    id: UUID
    title: str
    turns: int
    created_at: datetime
    last_active_at: datetime


@dataclass(frozen=True)
class Exchange:
    """One turn: a question and the answer to it."""

    turn: int
    question: str
    answer: str
    sources: list[dict[str, Any]]
    created_at: datetime
    feedback: Feedback | None = None


@dataclass(frozen=True)
class Page:
    conversations: list[Conversation]
    next_cursor: str | None


_COLUMNS = "id, title, turns, created_at, last_active_at"


def cursor_after(conversation: Conversation) -> str:
    """Where the next page starts: opaque to clients (its form may change)."""
    raw = f"{conversation.last_active_at.isoformat()}|{conversation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, conversation_id = raw.partition("|")
        at = datetime.fromisoformat(when)
        if at.tzinfo is None:
            raise ValueError("no time zone")
        return at, UUID(conversation_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor: not one this API gave (pass `next_cursor` as it came)"
        ) from None


async def page_for(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, *, limit: int, cursor: str | None
) -> Page:
    """The user's conversations, the most recently active first, ``limit``
    at a time: keyset pages, so a conversation that moves to the top while
    a client pages is neither shown twice nor skipped among the others."""
    after = parse_cursor(cursor) if cursor else None
    records = await pool.fetch(
        f"SELECT {_COLUMNS} FROM conversations WHERE tenant_id = $1 AND user_id = $2"  # noqa: S608
        " AND ($3::timestamptz IS NULL OR (last_active_at, id) < ($3, $4))"
        " ORDER BY last_active_at DESC, id DESC LIMIT $5",
        tenant_id,
        user_id,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    found = [Conversation(**dict(r)) for r in records]
    more = len(found) > limit
    found = found[:limit]
    return Page(found, cursor_after(found[-1]) if more else None)


async def get(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, conversation_id: UUID
) -> Conversation | None:
    record = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM conversations"  # noqa: S608
        " WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
        tenant_id,
        user_id,
        conversation_id,
    )
    return Conversation(**dict(record)) if record else None


async def exchanges(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, conversation_id: UUID, *, limit: int
) -> list[Exchange]:
    """The conversation's last ``limit`` turns, oldest first, each with the
    user's rating of its answer."""
    records = await pool.fetch(
        "SELECT q.turn, q.content AS question, a.content AS answer, a.sources,"
        " q.created_at AS asked_at, f.rating, f.comment, f.wrong_source, f.created_at,"
        " f.updated_at"
        " FROM chat_history q JOIN chat_history a ON a.tenant_id = q.tenant_id"
        "  AND a.user_id = q.user_id AND a.conversation_id = q.conversation_id"
        "  AND a.turn = q.turn AND a.role = 'assistant'"
        " LEFT JOIN feedback f ON f.history_id = a.id"
        " WHERE q.tenant_id = $1 AND q.user_id = $2 AND q.conversation_id = $3"
        "  AND q.role = 'user'"
        " ORDER BY q.turn DESC LIMIT $4",
        tenant_id,
        user_id,
        conversation_id,
        limit,
    )
    return [
        Exchange(
            turn=r["turn"],
            question=r["question"],
            answer=r["answer"],
            sources=r["sources"],
            created_at=r["asked_at"],
            feedback=feedback_of(r),
        )
        for r in reversed(records)
    ]


async def rename(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, conversation_id: UUID, title: str
) -> Conversation | None:
    record = await pool.fetchrow(
        "UPDATE conversations SET title = $4"  # noqa: S608
        f" WHERE tenant_id = $1 AND user_id = $2 AND id = $3 RETURNING {_COLUMNS}",
        tenant_id,
        user_id,
        conversation_id,
        title,
    )
    return Conversation(**dict(record)) if record else None


async def delete(pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, conversation_id: UUID) -> bool:
    """Whether it was there. Its turns go with it (foreign key, cascading),
    and with the turns what refers to them."""
    deleted: str = await pool.execute(
        "DELETE FROM conversations WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
        tenant_id,
        user_id,
        conversation_id,
    )
    return deleted.endswith(" 1")
