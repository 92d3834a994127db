"""Changing a stored document the way its source changed: new content,
a new name, or gone. Folder sync uses these (``sync``); the gateway's
DELETE uses ``discard``, so a document removed by a sync goes exactly the
way one deleted through the API does.

A document is changed only when it is settled (``indexed`` or ``failed``):
one still queued or being indexed would race its ingest delivery (which
reads the row once, at the start). ``replace`` and ``rename`` then answer
``None`` and the caller tries again later.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import BinaryIO

import asyncpg

from shared.errors import NotFound
from shared.intake.queue import wait
from shared.intake.store import Intake, best_effort
from shared.storage import documents
from shared.storage.blobs import BlobStore
from shared.storage.documents import COLUMNS, Conn, Document, Lane
from shared.storage.vectorstore import VectorStore

SETTLED = ("indexed", "failed")

# New content: waiting for release again, as a new upload does (the
# sweeper re-queues a row never handed over, should the hand-over fail).
_NEW_CONTENT = f"""
UPDATE documents SET size_bytes=$2, sha256=$3, status='queued', error=NULL, chunks=0,
    attempts=0, lane=$4, released_at=NULL, request_topic=NULL, request_partition=NULL,
    request_offset=NULL, updated_at=now()
WHERE id=$1 RETURNING {COLUMNS}
"""  # noqa: S608


async def _settled(conn: Conn, doc_id: object) -> str | None:
    """Lock the row; its status (``NotFound`` without one)."""
    status: str | None = await conn.fetchval(
        "SELECT status FROM documents WHERE id=$1 FOR UPDATE", doc_id
    )
    if status is None:
        raise NotFound("document not found")
    return status if status in SETTLED else None


async def replace(
    intake: Intake,
    doc: Document,
    source: BinaryIO,
    correlation_id: str,
    *,
    limit_bytes: int,
    lane: Lane = "bulk",
) -> Document | None:
    """``doc`` with the content of ``source``, queued for indexing again.
    Its chunk ids are derived from (document, position, text), so the
    ingest worker keeps the embeddings of the chunks that did not change.
    ``None``: the document is not settled yet (try later)."""
    async with intake.pool.acquire() as conn, conn.transaction():
        if await _settled(conn, doc.id) is None:
            return None
        # Under the row's lock: no delivery starts on the old content now.
        stored = await intake.blobs.put(doc.blob_key, source, limit_bytes)
        record = await conn.fetchrow(_NEW_CONTENT, doc.id, stored.size_bytes, stored.sha256, lane)
    assert record is not None
    changed = Document.from_record(record)
    await wait(intake.broker, intake.topics, changed, correlation_id, db=intake.pool)
    return changed


async def rename(
    pool: asyncpg.Pool,
    vectors: VectorStore,
    doc: Document,
    filename: str,
    meta: dict[str, str],
) -> Document | None:
    """The document under a new name (and metadata), its chunks following
    in both indexes without being embedded again: the BM25 rows read the
    name from the row, Chroma's chunk metadata is rewritten. The text the
    chunks were embedded with keeps the old name as its title until the
    content next changes (docs/sources.md). ``None``: not settled yet."""
    async with pool.acquire() as conn, conn.transaction():
        if await _settled(conn, doc.id) is None:
            return None
        await conn.execute(
            "UPDATE documents SET filename=$2, meta=$3::text::jsonb, updated_at=now() WHERE id=$1",
            doc.id,
            filename,
            _json(meta),
        )
        await conn.execute(
            "UPDATE chunks SET meta=$2::text::jsonb WHERE document_id=$1", doc.id, _json(meta)
        )
    renamed = await documents.by_id(pool, doc.id)
    if renamed is None:
        return None
    wanted = {**documents.chunk_fields(renamed), "filename": renamed.filename}
    await vectors.set_document_fields(renamed.tenant_id, renamed.user_id, renamed.id, wanted)
    return renamed


def _json(meta: dict[str, str]) -> str:
    return json.dumps(meta)


Hook = Callable[[Conn, Document], Awaitable[None]]


async def discard(
    pool: asyncpg.Pool,
    vectors: VectorStore,
    blobs: BlobStore,
    doc: Document,
    *,
    in_transaction: Hook | None = None,
) -> Document | None:
    """Delete the document: its chunks, its row (with ``in_transaction``,
    e.g. an audit entry, in the row's transaction), its chunks again (a
    worker may have added some meanwhile), its blob. ``None``: no such row
    (deleted meanwhile). What fails after the row is gone is logged and
    left (the blob to the reconciler)."""
    # Chunks first, so a failure here leaves the document whole and retryable.
    await vectors.delete_document(doc.tenant_id, doc.user_id, doc.id)
    async with pool.acquire() as conn, conn.transaction():
        gone = await documents.delete(conn, doc.tenant_id, doc.user_id, doc.id)
        if gone is None:
            return None
        if in_transaction is not None:
            await in_transaction(conn, gone)
    await best_effort("chunks", gone, vectors.delete_document(doc.tenant_id, doc.user_id, doc.id))
    await best_effort("blob", gone, blobs.delete(gone.blob_key))
    return gone
