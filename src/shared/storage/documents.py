"""The ``documents`` table: the source of truth for what a tenant uploaded.

Every read is scoped in the query itself: a caller reads their own documents,
those their tenant's users shared (``visibility = 'tenant'``) and those shared
with a group they are in (``visibility = 'groups'``, shared.storage.groups);
only the owner changes or deletes one. An id the caller may not read looks exactly
like an id that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias
from uuid import UUID

import asyncpg

from shared.config import Settings
from shared.contracts.events import DocumentStatus
from shared.errors import Forbidden, NotFound, Unavailable
from shared.storage import groups
from shared.storage.vectorstore import document_fields

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from shared.storage.vectorstore import VectorStore


class RequestPositions(Protocol):
    """Per partition of the requests topic (shared.runtime.metrics.Positions)."""

    @property
    def committed(self) -> Mapping[int, int]: ...
    @property
    def start(self) -> Mapping[int, int]: ...
    @property
    def end(self) -> Mapping[int, int]: ...


# The pool, or a connection from it in the transaction of an action.
Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"
Conn: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"

Visibility = Literal["private", "groups", "tenant"]
# Interactive uploads are released for indexing before a tenant's bulk work.
Lane = Literal["interactive", "bulk"]

COLUMNS = (
    "id, tenant_id, user_id, filename, content_type, size_bytes, sha256, blob_key,"
    " status, chunks, error, created_at, updated_at, visibility, lane, tags, meta"
)
FIELDS = tuple(name.strip() for name in COLUMNS.split(","))
# What a caller may read: their own documents, their tenant's shared ones and
# those shared with their groups. $1 is the tenant, $2 the caller.
_READABLE = groups.readable_clause("documents")


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
    visibility: Visibility = "private"
    lane: Lane = "interactive"
    # Labels (shared.contracts.labels), copied onto every chunk for filters.
    tags: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Document:
        """The document of a row that has (at least) its columns."""
        fields = {name: record[name] for name in FIELDS if name in record}
        if isinstance(fields.get("meta"), str):  # a pool without the jsonb codec
            fields["meta"] = json.loads(fields["meta"])
        return cls(**fields)


async def insert(pool: Db, doc: Document) -> None:
    await pool.execute(
        f"INSERT INTO documents ({COLUMNS})"  # noqa: S608
        # meta as text: the same SQL whether or not the pool decodes jsonb.
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17::text::jsonb)",
        doc.id,
        doc.tenant_id,
        doc.user_id,
        doc.filename,
        doc.content_type,
        doc.size_bytes,
        doc.sha256,
        doc.blob_key,
        doc.status,
        doc.chunks,
        doc.error,
        doc.created_at,
        doc.updated_at,
        doc.visibility,
        doc.lane,
        doc.tags,
        json.dumps(doc.meta),
    )


@dataclass(frozen=True)
class Quota:
    max_documents: int
    max_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Quota:
        return cls(settings.tenant_max_documents, settings.tenant_max_mb * 1024 * 1024)


async def check_quota(pool: Db, tenant_id: UUID, size_bytes: int, quota: Quota) -> None:
    """Refuse (403) a new document of ``size_bytes`` that would take the
    tenant past its quota. Counts every document the tenant holds, whatever
    its owner or status: each has a blob on disk."""
    record = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(size_bytes), 0)::bigint AS total"
        " FROM documents WHERE tenant_id=$1",
        tenant_id,
    )
    assert record is not None
    if record["n"] + 1 > quota.max_documents:
        raise Forbidden(
            f"upload refused: the tenant has {record['n']} documents and may hold at most"
            f" {quota.max_documents} (TENANT_MAX_DOCUMENTS); delete some or ask an administrator"
        )
    if record["total"] + size_bytes > quota.max_bytes:
        mb = quota.max_bytes // (1024 * 1024)
        used = record["total"] / (1024 * 1024)
        raise Forbidden(
            f"upload refused: the tenant's documents take {used:.1f} MB and this file"
            f" would take them past the limit of {mb} MB (TENANT_MAX_MB)"
        )


async def insert_within_quota(pool: asyncpg.Pool, doc: Document, quota: Quota) -> None:
    """Insert the row unless the tenant's quota forbids it. The check and the
    insert hold a per-tenant lock, so concurrent uploads cannot all pass a
    check that only one of them should."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))", str(doc.tenant_id)
        )
        await check_quota(conn, doc.tenant_id, doc.size_bytes, quota)
        await insert(conn, doc)


async def get(pool: Db, tenant_id: UUID, user_id: UUID, doc_id: UUID) -> Document | None:
    """The document if the caller owns it."""
    record = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM documents WHERE id=$1 AND tenant_id=$2 AND user_id=$3",  # noqa: S608
        doc_id,
        tenant_id,
        user_id,
    )
    return Document.from_record(record) if record else None


async def readable(pool: Db, tenant_id: UUID, user_id: UUID, doc_id: UUID) -> Document | None:
    """The document if the caller owns it or their tenant shares it."""
    record = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM documents WHERE {_READABLE} AND id=$3",  # noqa: S608
        tenant_id,
        user_id,
        doc_id,
    )
    return Document.from_record(record) if record else None


async def owned(pool: Db, tenant_id: UUID, user_id: UUID, doc_id: UUID) -> Document:
    """The document for a change only its owner may make: ``NotFound`` when
    the caller cannot read it, ``Forbidden`` when they can but do not own it."""
    doc = await readable(pool, tenant_id, user_id, doc_id)
    if doc is None:
        raise NotFound("document not found")
    if doc.user_id != user_id:
        raise Forbidden("only the document's owner may change or delete it")
    return doc


async def readable_ids(
    pool: Db, tenant_id: UUID, user_id: UUID, doc_ids: Collection[UUID]
) -> set[UUID]:
    """Which of ``doc_ids`` the caller may read, now."""
    if not doc_ids:
        return set()
    rows = await pool.fetch(
        f"SELECT id FROM documents WHERE {_READABLE} AND id = ANY($3::uuid[])",  # noqa: S608
        tenant_id,
        user_id,
        list(doc_ids),
    )
    return {row["id"] for row in rows}


async def list_for(
    pool: Db, tenant_id: UUID, user_id: UUID, *, limit: int, offset: int
) -> list[Document]:
    """The caller's documents and the tenant's shared ones, newest first."""
    records = await pool.fetch(
        f"SELECT {COLUMNS} FROM documents WHERE {_READABLE}"  # noqa: S608
        " ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        tenant_id,
        user_id,
        limit,
        offset,
    )
    return [Document.from_record(r) for r in records]


async def set_visibility(
    conn: Conn, tenant_id: UUID, user_id: UUID, doc_id: UUID, visibility: Visibility
) -> Visibility | None:
    """Set an owned document's visibility, inside the caller's transaction;
    the one it had (``None``: the caller owns no such document). Only the
    row: ``sync_visibility`` then brings the chunks in line."""
    before: Visibility | None = await conn.fetchval(
        "SELECT visibility FROM documents WHERE id=$1 AND tenant_id=$2 AND user_id=$3 FOR UPDATE",
        doc_id,
        tenant_id,
        user_id,
    )
    if before is not None and before != visibility:
        await conn.execute("UPDATE documents SET visibility=$2 WHERE id=$1", doc_id, visibility)
    return before


async def visibility_of(pool: Db, doc_id: UUID) -> Visibility | None:
    """For workers: the row's visibility now (``None``: no such document)."""
    value: Visibility | None = await pool.fetchval(
        "SELECT visibility FROM documents WHERE id=$1", doc_id
    )
    return value


SYNC_ROUNDS = 5


async def set_labels(
    conn: Conn,
    tenant_id: UUID,
    user_id: UUID,
    doc_id: UUID,
    tags: list[str] | None,
    meta: dict[str, str] | None,
) -> bool:
    """Replace an owned document's tags and/or metadata (``None``: keep),
    on its row and its BM25 chunk rows, inside the caller's transaction;
    whether the caller owns such a document. Chroma's copy: ``sync_labels``."""
    found = await conn.fetchval(
        "SELECT 1 FROM documents WHERE id=$1 AND tenant_id=$2 AND user_id=$3 FOR UPDATE",
        doc_id,
        tenant_id,
        user_id,
    )
    if found is None:
        return False
    changes = (("tags", "$2::text[]", tags), ("meta", "$2::text::jsonb", meta))
    for column, param, value in changes:
        if value is None:
            continue
        for table, key in (("documents", "id"), ("chunks", "document_id")):
            await conn.execute(
                f"UPDATE {table} SET {column}={param} WHERE {key}=$1",  # noqa: S608 - names are ours
                doc_id,
                json.dumps(value) if column == "meta" else value,
            )
    return True


def chunk_fields(doc: Document, group_ids: Collection[UUID] = ()) -> dict[str, Any]:
    """What each of the document's chunks copies from its row (and its
    ``document_groups``) into Chroma."""
    return document_fields(doc.content_type, doc.created_at, doc.tags, doc.meta, group_ids)


async def with_groups(pool: Db, doc_id: UUID) -> tuple[Document, list[UUID]] | None:
    """The row and the groups it is shared with, read now (None: gone)."""
    record = await pool.fetchrow(f"SELECT {COLUMNS} FROM documents WHERE id=$1", doc_id)  # noqa: S608
    if record is None:
        return None
    return Document.from_record(record), await groups.of_document(pool, doc_id)


async def sync_labels(
    pool: Db,
    vectors: VectorStore,
    doc: Document,
    written: dict[str, Any] | None = None,
) -> None:
    """Make the document's chunk metadata in Chroma carry its row's labels
    (and content type, upload time and groups), as ``sync_visibility`` does for
    visibility: written from the row, then the row read again, and written
    again if it changed meanwhile. ``written``: what every chunk already
    carries (``None``: unknown, so every chunk is read and checked)."""
    for _ in range(SYNC_ROUNDS):
        now = await with_groups(pool, doc.id)
        if now is None:
            return
        wanted = chunk_fields(*now)
        if wanted == written:
            return
        await vectors.set_document_fields(doc.tenant_id, doc.user_id, doc.id, wanted)
        written = wanted
    raise Unavailable("the document's labels keep changing; try again")


async def sync_visibility(
    pool: Db, vectors: VectorStore, doc: Document, written: Visibility | None = None
) -> Visibility | None:
    """Make the visibility in the document's chunk metadata the row's.

    Every writer of chunk visibility (an ingest delivery, a PATCH) writes a
    value it read from the row, then reads the row again: if it changed
    meanwhile, the writer writes again. Whichever write lands last was then
    checked against the row after it landed, so no chunk is left with a
    visibility the row no longer has. ``written``: what every chunk already
    carries (``None``: unknown). Returns the row's visibility, ``None`` if
    the document is gone."""
    for _ in range(SYNC_ROUNDS):
        current = await visibility_of(pool, doc.id)
        if current is None or current == written:
            return current
        await vectors.set_visibility(doc.tenant_id, doc.user_id, doc.id, current)
        written = current
    raise Unavailable("the document's visibility keeps changing; try again")


async def delete(pool: Db, tenant_id: UUID, user_id: UUID, doc_id: UUID) -> Document | None:
    record = await pool.fetchrow(
        f"DELETE FROM documents WHERE id=$1 AND tenant_id=$2 AND user_id=$3 RETURNING {COLUMNS}",  # noqa: S608
        doc_id,
        tenant_id,
        user_id,
    )
    return Document.from_record(record) if record else None


async def set_status(
    pool: Db,
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
    # A request can arrive for a row never marked released (its releaser
    # died after publishing): from here it is released, the sweeper's.
    attempts: int | None = await pool.fetchval(
        "UPDATE documents SET status='processing', error=NULL, attempts=attempts+1,"
        " released_at=coalesce(released_at, now()), updated_at=now() WHERE id=$1"
        " RETURNING attempts",
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
    record = await pool.fetchrow(f"SELECT {COLUMNS} FROM documents WHERE id=$1", doc_id)  # noqa: S608
    return Document.from_record(record) if record else None


# Rows claimed by one sweeper: ``FOR UPDATE SKIP LOCKED``, and their
# ``updated_at`` moved on, so no other sweeper takes them until the next
# ``stuck_seconds`` have passed. Of those released on the requests topic
# ($3), one is stuck when its group has read past its request (committed,
# $4), or the log no longer holds it (before the log's start, $5, or at or
# past its end, $6: deleted by retention, or the topic made anew); one in
# between is waiting its turn. Arrays are indexed by partition + 1; a
# missing figure never makes a document stuck. One waiting for release is
# the releasers' (shared.storage.ingest_queue), and a topic not ours is
# another deployment's (another prefix). A row never handed to any topic
# (its upload died half-way, or it predates the recording) is stuck, and so
# is a released one whose request was never recorded.
_STUCK = f"""
UPDATE documents AS d SET updated_at = now()
FROM (
    SELECT id FROM documents
    WHERE status IN ('queued', 'processing') AND updated_at < now() - make_interval(secs => $1)
      AND (request_topic IS NULL OR (request_topic = $3 AND released_at IS NOT NULL AND (
           request_offset IS NULL
        OR request_offset < coalesce(($4::bigint[])[request_partition + 1], -1)
        OR request_offset < coalesce(($5::bigint[])[request_partition + 1], -1)
        OR request_offset >= coalesce(($6::bigint[])[request_partition + 1], {2**63 - 1}))))
    ORDER BY updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) AS stuck
WHERE d.id = stuck.id
RETURNING {", ".join("d." + name for name in FIELDS)}, d.attempts
"""  # noqa: S608


def _by_partition(offsets: Mapping[int, int]) -> list[int | None]:
    return [offsets.get(p) for p in range(max(offsets, default=-1) + 1)]


async def claim_stuck(
    conn: Conn,
    stuck_seconds: float,
    limit: int,
    topic: str,
    positions: RequestPositions,
) -> list[tuple[Document, int]]:
    """Up to ``limit`` documents still ``queued`` or ``processing`` after
    ``stuck_seconds`` without a change whose request on ``topic`` was
    consumed, or is gone from the log, or was never recorded; with their
    attempt counts. Held (and skipped by other sweepers) until ``conn``'s
    transaction ends."""
    rows = await conn.fetch(
        _STUCK,
        float(stuck_seconds),
        limit,
        topic,
        _by_partition(positions.committed),
        _by_partition(positions.start),
        _by_partition(positions.end),
    )
    return [(Document.from_record(row), row["attempts"]) for row in rows]


async def indexed_ids(pool: Db, tenant_id: UUID | None) -> list[UUID]:
    """The indexed documents of a tenant (``None``: of every tenant), oldest first."""
    rows = await pool.fetch(
        "SELECT id FROM documents WHERE status = 'indexed'"
        " AND ($1::uuid IS NULL OR tenant_id = $1) ORDER BY created_at, id",
        tenant_id,
    )
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class Tally:
    """Where some documents stand: how many are in each status, and the
    chunks of those indexed; those not counted are deleted."""

    counts: dict[DocumentStatus, int]
    indexed_chunks: int


async def tally(pool: Db, ids: Collection[UUID]) -> Tally:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n, coalesce(sum(chunks), 0)::bigint AS chunks"
        " FROM documents WHERE id = ANY($1::uuid[]) GROUP BY status",
        list(ids),
    )
    chunks = next((row["chunks"] for row in rows if row["status"] == "indexed"), 0)
    return Tally({row["status"]: row["n"] for row in rows}, chunks)


async def failures(pool: Db, ids: Collection[UUID]) -> list[tuple[UUID, str | None]]:
    """The failed ones of ``ids``, with their reasons."""
    rows = await pool.fetch(
        "SELECT id, error FROM documents WHERE id = ANY($1::uuid[]) AND status = 'failed'",
        list(ids),
    )
    return [(row["id"], row["error"]) for row in rows]


async def count_all(pool: Db) -> int:
    """Every tenant's documents, whatever their status (the reconciler's
    measure of how much a run may remove)."""
    count: int = await pool.fetchval("SELECT count(*) FROM documents")
    return count


async def any_exist(pool: Db) -> bool:
    exists: bool = await pool.fetchval("SELECT EXISTS (SELECT 1 FROM documents)")
    return exists


async def blob_keys_of(pool: Db, ids: Collection[UUID]) -> set[str]:
    """The blob keys of those of ``ids`` that have a row (by primary key: no scan)."""
    rows = await pool.fetch("SELECT blob_key FROM documents WHERE id = ANY($1::uuid[])", list(ids))
    return {row["blob_key"] for row in rows}


async def created_before(pool: Db, cutoff: datetime, after: UUID, limit: int) -> list[Document]:
    """A page of the documents created before ``cutoff``, by id after ``after``."""
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM documents"  # noqa: S608
        " WHERE created_at < $1 AND id > $2 ORDER BY id LIMIT $3",
        cutoff,
        after,
        limit,
    )
    return [Document.from_record(row) for row in rows]


async def delete_created_before(pool: Db, doc_id: UUID, cutoff: datetime) -> None:
    """Delete the row unless it is newer than ``cutoff`` (then it is another
    document under a reused id, or a re-upload: not the reconciler's)."""
    await pool.execute("DELETE FROM documents WHERE id = $1 AND created_at < $2", doc_id, cutoff)


async def record_request(db: Db, doc_id: UUID, topic: str, partition: int, offset: int) -> None:
    """Where the document's latest ingest request sits (``claim_stuck``);
    from now on it is released. The release is the row's last change: a
    document that waited an hour in PostgreSQL is not stuck the moment it
    is released (a sweeper that read the log's end just before would take
    its request for one gone from the log)."""
    await db.execute(
        "UPDATE documents SET request_topic = $2, request_partition = $3, request_offset = $4,"
        " released_at = coalesce(released_at, now()), updated_at = now() WHERE id = $1",
        doc_id,
        topic,
        partition,
        offset,
    )


@dataclass(frozen=True)
class Backlog:
    tenant: str  # its name
    documents: int
    oldest_seconds: float


async def backlog_by_tenant(pool: Db, limit: int) -> list[Backlog]:
    """The tenants with the most documents queued or processing, with how
    long the oldest of them has waited since its upload."""
    rows = await pool.fetch(
        "SELECT t.name, count(*) AS n, extract(epoch FROM now() - min(d.created_at)) AS oldest"
        " FROM documents d JOIN tenants t ON t.id = d.tenant_id"
        " WHERE d.status IN ('queued', 'processing')"
        " GROUP BY t.name ORDER BY n DESC, t.name LIMIT $1",
        limit,
    )
    return [Backlog(row["name"], row["n"], float(row["oldest"])) for row in rows]
