"""The ``documents`` table: the source of truth for what a tenant uploaded.

Every read is scoped by tenant and user in the query itself, so an id that
belongs to someone else looks exactly like an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.events import DocumentStatus

_COLUMNS = (
    "id, tenant_id, user_id, filename, content_type, size_bytes, sha256, blob_key,"
    " status, chunks, error, created_at, updated_at"
)


@dataclass(frozen=True)
class Document:
    id: UUID
    tenant_id: UUID
    user_id: UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    blob_key: str
    status: DocumentStatus
    chunks: int
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Document:
        return cls(**dict(record))


async def insert(pool: asyncpg.Pool, doc: Document) -> None:
    await pool.execute(
        f"INSERT INTO documents ({_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",  # noqa: S608
        doc.id, doc.tenant_id, doc.user_id, doc.filename, doc.content_type, doc.size_bytes,
        doc.sha256, doc.blob_key, doc.status, doc.chunks, doc.error, doc.created_at,
        doc.updated_at,
    )  # fmt: skip


async def get(pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, doc_id: UUID) -> Document | None:
    record = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM documents WHERE id=$1 AND tenant_id=$2 AND user_id=$3",  # noqa: S608
        doc_id,
        tenant_id,
        user_id,
    )
    return Document.from_record(record) if record else None


async def list_for(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, *, limit: int, offset: int
) -> list[Document]:
    records = await pool.fetch(
        f"SELECT {_COLUMNS} FROM documents WHERE tenant_id=$1 AND user_id=$2"  # noqa: S608
        " ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        tenant_id,
        user_id,
        limit,
        offset,
    )
    return [Document.from_record(r) for r in records]


async def delete(
    pool: asyncpg.Pool, tenant_id: UUID, user_id: UUID, doc_id: UUID
) -> Document | None:
    record = await pool.fetchrow(
        f"DELETE FROM documents WHERE id=$1 AND tenant_id=$2 AND user_id=$3 RETURNING {_COLUMNS}",  # noqa: S608
        doc_id,
        tenant_id,
        user_id,
    )
    return Document.from_record(record) if record else None


async def set_status(
    pool: asyncpg.Pool,
    doc_id: UUID,
    status: DocumentStatus,
    *,
    chunks: int | None = None,
    error: str | None = None,
) -> bool:
    """Record a status change; False when the document no longer exists. An
    outcome (indexed, failed) settles the delivery attempts so far."""
    result: str = await pool.execute(
        "UPDATE documents SET status=$2, chunks=COALESCE($3, chunks), error=$4, updated_at=now(),"
        " attempts = CASE WHEN $2 IN ('indexed', 'failed') THEN 0 ELSE attempts END"
        " WHERE id=$1",
        doc_id,
        status,
        chunks,
        error,
    )
    return result != "UPDATE 0"


async def claim(pool: asyncpg.Pool, doc_id: UUID) -> int | None:
    """A delivery starts processing the document: ``processing``, one more
    attempt, in one write. The attempts so far; ``None``: no such document."""
    attempts: int | None = await pool.fetchval(
        "UPDATE documents SET status='processing', error=NULL, attempts=attempts+1,"
        " updated_at=now() WHERE id=$1 RETURNING attempts",
        doc_id,
    )
    return attempts


async def touch(pool: asyncpg.Pool, doc_id: UUID) -> None:
    """Still being worked on: keeps a long document from looking stuck."""
    await pool.execute(
        "UPDATE documents SET updated_at=now() WHERE id=$1 AND status='processing'", doc_id
    )


async def by_id(pool: asyncpg.Pool, doc_id: UUID) -> Document | None:
    """For workers only: the row whatever its owner, because a message's
    claims about the owner are checked against it, not trusted."""
    record = await pool.fetchrow(f"SELECT {_COLUMNS} FROM documents WHERE id=$1", doc_id)  # noqa: S608
    return Document.from_record(record) if record else None
