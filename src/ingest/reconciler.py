"""Removing what crashes and failed clean-ups leave behind: blobs that no
document row refers to, and document rows whose blob is gone.

An upload writes its blob before its row, and a delete removes the row
before the blob, so a young blob without a row may be an upload in flight:
only blobs (by mtime) and rows (by ``created_at``) older than
``reconcile_min_age_seconds`` are ever touched. A Postgres advisory lock
lets one process at a time reconcile, however many ingest workers run it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import structlog
from prometheus_client import Counter

from shared.config import Settings
from shared.runtime.clients import Clients
from shared.runtime.logging import configure_logging
from shared.storage.blobs import BlobInfo, LocalBlobStore
from shared.storage.db import create_pool
from shared.storage.vector_writes import VectorWriteLock
from shared.storage.vectorstore import VectorStore, connect_chroma

log = structlog.get_logger(__name__)

RECONCILED = Counter(
    "rag_reconciled_total", "Orphaned blobs and documents without blobs removed", ["kind"]
)
# Any fixed number, the same in every process: pg_try_advisory_lock's key.
LOCK_KEY = 0x7261_6772_6563_6F6E  # "ragrecon"
# Blobs listed, and rows read, at a time: memory stays bounded by this.
PAGE = 500
_NO_ID = UUID(int=0)


@dataclass(frozen=True)
class Stores:
    pool: asyncpg.Pool
    blobs: LocalBlobStore
    # Without an embedder: deletes a document's vectors from every
    # embedding space's collection, not only the current model's.
    vectors: VectorStore
    min_age_seconds: int


@dataclass
class Report:
    dry_run: bool
    ran: bool = True  # False: another process held the lock
    orphan_blobs: list[str] = field(default_factory=list)
    rows_without_blob: list[UUID] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.ran:
            return ["another process is reconciling; nothing done"]
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} orphan blob {key}" for key in self.orphan_blobs]
        lines += [f"{verb} document without blob {doc_id}" for doc_id in self.rows_without_blob]
        tail = " (dry run: nothing changed)" if self.dry_run else ""
        counts = f"{len(self.orphan_blobs)} orphan blobs, {len(self.rows_without_blob)} documents"
        return [*lines, f"{counts} without blob{tail}"]


async def reconcile_once(stores: Stores, *, dry_run: bool = False) -> Report:
    async with _exclusive(stores.pool) as held:
        if not held:
            return Report(dry_run, ran=False)
        report = Report(dry_run)
        await _orphan_blobs(stores, report)
        await _rows_without_blob(stores, report)
    return report


@asynccontextmanager
async def _exclusive(pool: asyncpg.Pool) -> AsyncIterator[bool]:
    """A session-level advisory lock, held on one connection for the run."""
    async with pool.acquire() as conn:
        held: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        try:
            yield held
        finally:
            if held:
                await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _orphan_blobs(stores: Stores, report: Report) -> None:
    cutoff = time.time() - stores.min_age_seconds
    async for page in stores.blobs.pages(PAGE):
        old = [blob for blob in page if blob.modified < cutoff and blob.document_id]
        referenced = await _referenced(stores.pool, old)
        for blob in old:
            if blob.key not in referenced:
                await _remove_blob(stores, report, blob)


async def _referenced(pool: asyncpg.Pool, blobs: list[BlobInfo]) -> set[str]:
    """The keys among ``blobs`` that a document row refers to (looked up by
    document id: the primary key, so no scan of the table)."""
    if not blobs:
        return set()
    rows = await pool.fetch(
        "SELECT blob_key FROM documents WHERE id = ANY($1::uuid[])",
        [blob.document_id for blob in blobs],
    )
    return {row["blob_key"] for row in rows}


async def _remove_blob(stores: Stores, report: Report, blob: BlobInfo) -> None:
    report.orphan_blobs.append(blob.key)
    if report.dry_run:
        return
    await stores.blobs.delete(blob.key)
    RECONCILED.labels("blob").inc()
    log.info("Reconciled orphan blob", blob_key=blob.key, age_s=round(time.time() - blob.modified))


async def _rows_without_blob(stores: Stores, report: Report) -> None:
    cutoff = datetime.now(UTC) - timedelta(seconds=stores.min_age_seconds)
    after = _NO_ID
    while rows := await stores.pool.fetch(
        "SELECT id, tenant_id, user_id, blob_key FROM documents"
        " WHERE created_at < $1 AND id > $2 ORDER BY id LIMIT $3",
        cutoff,
        after,
        PAGE,
    ):
        after = rows[-1]["id"]
        present = await stores.blobs.existing([row["blob_key"] for row in rows])
        for row in rows:
            if row["blob_key"] not in present:
                await _remove_row(stores, report, row, cutoff)


async def _remove_row(
    stores: Stores, report: Report, row: asyncpg.Record, cutoff: datetime
) -> None:
    report.rows_without_blob.append(row["id"])
    if report.dry_run:
        return
    # Vectors first: were the row gone and this to fail, nothing would point
    # at them any more. Lexical chunks go with the row (ON DELETE CASCADE).
    await stores.vectors.delete_document(row["tenant_id"], row["user_id"], row["id"])
    await stores.pool.execute(
        "DELETE FROM documents WHERE id = $1 AND created_at < $2", row["id"], cutoff
    )
    RECONCILED.labels("document").inc()
    log.info("Reconciled document without blob", document_id=str(row["id"]))


async def reconcile_forever(clients: Clients) -> None:
    """Every ``reconcile_interval_seconds`` (0: never), from the first moment."""
    settings = clients.settings
    if settings.reconcile_interval_seconds <= 0:
        return
    stores: Stores | None = None
    while True:
        try:
            stores = stores or await _stores(settings, clients.pool)
            report = await reconcile_once(stores)
            if report.orphan_blobs or report.rows_without_blob:
                log.info("Reconciled", summary=report.lines()[-1])
        except Exception as exc:
            # A dependency down now may be back next time.
            log.warning("Reconciliation failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(settings.reconcile_interval_seconds)


async def _stores(settings: Settings, pool: asyncpg.Pool) -> Stores:
    chroma = await asyncio.to_thread(connect_chroma, settings)
    return Stores(
        pool=pool,
        blobs=LocalBlobStore(settings.blob_dir),
        vectors=VectorStore(chroma, None, VectorWriteLock(pool)),
        min_age_seconds=settings.reconcile_min_age_seconds,
    )


async def _run_once(settings: Settings, dry_run: bool) -> Report:
    pool = await create_pool(settings)
    try:
        return await reconcile_once(await _stores(settings, pool), dry_run=dry_run)
    finally:
        await pool.close()


def command(*, dry_run: bool) -> int:
    """``rag reconcile [--dry-run]``: once, printing what it did (or would do)."""
    settings = Settings()
    configure_logging(settings, "reconcile")
    # stdout carries the report; log lines go to stderr.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    report = asyncio.run(_run_once(settings, dry_run))
    print("\n".join(report.lines()))
    return 0 if report.ran else 1
