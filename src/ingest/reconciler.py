"""Removing what crashes and failed clean-ups leave behind: blobs that no
document row refers to, and document rows whose blob is gone.

An upload writes its blob before its row, and a delete removes the row
before the blob, so a young blob without a row may be an upload in flight:
only blobs (by mtime) and rows (by ``created_at``) older than
``reconcile_min_age_seconds`` are ever touched. A Postgres advisory lock
lets one process at a time reconcile, however many ingest workers run it.

A wrong blob root would make every row look orphaned: a run first checks
that the blob root (``BLOB_DIR``, or the bucket and prefix with
``BLOB_STORE=s3``) is this deployment's (its marker, ``shared.storage.blob_root``)
and refuses, deleting nothing, when it is missing, empty or foreign. Then it
lists what would go and refuses the whole run when that is more than
``reconcile_max_delete_fraction`` of the documents or of the blobs (beyond
``reconcile_max_delete_floor``).
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
from shared.runtime.clients import Clients, build_blob_store
from shared.runtime.logging import configure_logging
from shared.storage import blob_root, documents
from shared.storage.blobs import BlobInfo, BlobStore
from shared.storage.db import create_pool
from shared.storage.documents import Document
from shared.storage.vector_writes import VectorWriteLock
from shared.storage.vectorstore import VectorStore, connect_chroma

log = structlog.get_logger(__name__)

RECONCILED = Counter(
    "rag_reconciled_total", "Orphaned blobs and documents without blobs removed", ["kind"]
)
REFUSED = Counter(
    "rag_reconcile_refused_total", "Reconciliations refused, deleting nothing", ["check"]
)
# Any fixed number, the same in every process: pg_try_advisory_lock's key.
LOCK_KEY = 0x7261_6772_6563_6F6E  # "ragrecon"
# Blobs listed, and rows read, at a time: memory stays bounded by this plus
# what the run would remove (held until the share check has passed).
PAGE = 500
_NO_ID = UUID(int=0)


@dataclass(frozen=True)
class Stores:
    pool: asyncpg.Pool
    blobs: BlobStore
    # Without an embedder: deletes a document's vectors from every
    # embedding space's collection, not only the current model's.
    vectors: VectorStore
    min_age_seconds: int
    # A run that would remove more than this share of the documents, or of
    # the blobs, removes nothing; up to ``max_delete_floor`` always may go.
    max_delete_fraction: float = 0.1
    max_delete_floor: int = 10


@dataclass(frozen=True)
class Refusal:
    """Why a run deleted nothing: the check, what it found, what to do."""

    check: str  # blob-root-missing, blob-root-empty, blob-root-unmarked, ...
    found: str
    action: str

    def lines(self) -> list[str]:
        return [f"refused ({self.check}): {self.found}", f"nothing was removed; {self.action}"]


@dataclass
class Report:
    dry_run: bool
    ran: bool = True  # False: another process held the lock
    orphan_blobs: list[str] = field(default_factory=list)
    rows_without_blob: list[UUID] = field(default_factory=list)
    refusal: Refusal | None = None

    def lines(self) -> list[str]:
        if not self.ran:
            return ["another process is reconciling; nothing done"]
        if self.refusal is not None and not self.dry_run:
            return self.refusal.lines()
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} orphan blob {key}" for key in self.orphan_blobs]
        lines += [f"{verb} document without blob {doc_id}" for doc_id in self.rows_without_blob]
        tail = " (dry run: nothing changed)" if self.dry_run else ""
        counts = f"{len(self.orphan_blobs)} orphan blobs, {len(self.rows_without_blob)} documents"
        refused = self.refusal.lines() if self.refusal is not None else []
        return [*lines, f"{counts} without blob{tail}", *refused]


@dataclass
class _Candidates:
    """What a run would remove, and what it was chosen from."""

    blobs: list[BlobInfo] = field(default_factory=list)
    rows: list[Document] = field(default_factory=list)
    blobs_total: int = 0
    rows_total: int = 0


async def reconcile_once(
    stores: Stores, *, dry_run: bool = False, adopt_root: bool = False
) -> Report:
    """One run. ``adopt_root``: make the blob root this deployment's
    first (``blob_root.adopt``), after an operator checked that it is."""
    async with _exclusive(stores.pool) as held:
        if not held:
            return Report(dry_run, ran=False)
        report = Report(dry_run)
        report.refusal = await _root_refusal(stores, dry_run=dry_run, adopt=adopt_root)
        if report.refusal is not None and not dry_run:
            _refused(report.refusal)
            return report
        # A dry run lists what would go even when refused: it helps decide.
        found = _Candidates()
        cutoff = datetime.now(UTC) - timedelta(seconds=stores.min_age_seconds)
        found.rows_total = await documents.count_all(stores.pool)
        await _orphan_blobs(stores, found)
        await _rows_without_blob(stores, found, cutoff)
        report.orphan_blobs = [blob.key for blob in found.blobs]
        report.rows_without_blob = [doc.id for doc in found.rows]
        report.refusal = report.refusal or _share_refusal(stores, found)
        if report.refusal is not None:
            if not dry_run:
                _refused(report.refusal)
            return report
        if not dry_run:
            for blob in found.blobs:
                await _remove_blob(stores, blob)
            for doc in found.rows:
                await _remove_row(stores, doc, cutoff)
    return report


def _refused(refusal: Refusal) -> None:
    REFUSED.labels(refusal.check).inc()
    log.error(
        "Reconciliation refused", check=refusal.check, found=refusal.found, action=refusal.action
    )


async def _root_refusal(stores: Stores, *, dry_run: bool, adopt: bool) -> Refusal | None:
    """Whether the blob root is this deployment's; on first use it
    is marked and recorded (not in a dry run: that changes nothing)."""
    if adopt:
        if not dry_run:
            await blob_root.adopt(stores.pool, stores.blobs)
        return None
    if not dry_run:
        await blob_root.claim(stores.pool, stores.blobs)
    known = await blob_root.recorded(stores.pool)
    root = await blob_root.inspect(stores.blobs)
    rows_exist = await documents.any_exist(stores.pool)
    if blob_root.first_use(known, root, rows_exist):
        return None  # claimed now (a real run), or would be (a dry run)
    return _root_check(known, root, rows_exist)


_RUNBOOK = ' (runbook, "Orphaned blobs and rows")'
_ADOPT = (
    "if it is this deployment's blob root (e.g. restored from a backup without its marker),"
    " run `rag reconcile --dry-run`, then `rag reconcile --adopt-blob-root`"
)


def _root_check(known: UUID | None, root: blob_root.RootState, rows_exist: bool) -> Refusal | None:
    where, fix = root.where, root.hint + _RUNBOOK
    if not root.exists:
        if not rows_exist:
            return None  # nothing could be removed
        return Refusal("blob-root-missing", f"{where} does not exist, while documents do", fix)
    if root.marker_text is None:
        if not root.has_blobs:
            return Refusal(
                "blob-root-empty",
                f"{where} holds no blobs and no marker ({blob_root.MARKER}), while documents exist",
                fix,
            )
        return Refusal(
            "blob-root-unmarked",
            f"{where} holds blobs but no marker ({blob_root.MARKER}); PostgreSQL records"
            f" blob root {known}",
            f"{fix}; {_ADOPT}",
        )
    if root.marker is None or known is None or root.marker != known:
        recorded = f"blob root {known}" if known is not None else "no blob root"
        return Refusal(
            "blob-root-foreign",
            f"{where} is marked {root.marker_text!r} ({blob_root.MARKER}), but PostgreSQL"
            f" records {recorded}: another deployment's blobs, or another database",
            f"check {root.settings} and DATABASE_URL; {_ADOPT}",
        )
    return None


def _share_refusal(stores: Stores, found: _Candidates) -> Refusal | None:
    for kind, count, total in (
        ("documents without blob", len(found.rows), found.rows_total),
        ("orphan blobs", len(found.blobs), found.blobs_total),
    ):
        allowed = max(stores.max_delete_floor, int(stores.max_delete_fraction * total))
        if count > allowed:
            return Refusal(
                "delete-share",
                f"would remove {count} {kind} of {total}, more than"
                f" RECONCILE_MAX_DELETE_FRACTION={stores.max_delete_fraction:g} allows"
                f" ({allowed})",
                "see what would go with `rag reconcile --dry-run`; if that is right, run"
                " `RECONCILE_MAX_DELETE_FRACTION=1 rag reconcile` once",
            )
    return None


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


async def _orphan_blobs(stores: Stores, found: _Candidates) -> None:
    cutoff = time.time() - stores.min_age_seconds
    async for page in stores.blobs.pages(PAGE):
        found.blobs_total += len(page)
        old = [blob for blob in page if blob.modified < cutoff and blob.document_id]
        referenced = await _referenced(stores.pool, old)
        found.blobs += [blob for blob in old if blob.key not in referenced]


async def _referenced(pool: asyncpg.Pool, blobs: list[BlobInfo]) -> set[str]:
    """The keys among ``blobs`` that a document row refers to (looked up by
    document id: the primary key, so no scan of the table)."""
    if not blobs:
        return set()
    ids = [blob.document_id for blob in blobs if blob.document_id is not None]
    return await documents.blob_keys_of(pool, ids)


async def _remove_blob(stores: Stores, blob: BlobInfo) -> None:
    await stores.blobs.delete(blob.key)
    RECONCILED.labels("blob").inc()
    log.info("Reconciled orphan blob", blob_key=blob.key, age_s=round(time.time() - blob.modified))


async def _rows_without_blob(stores: Stores, found: _Candidates, cutoff: datetime) -> None:
    after = _NO_ID
    while page := await documents.created_before(stores.pool, cutoff, after, PAGE):
        after = page[-1].id
        present = await stores.blobs.existing([doc.blob_key for doc in page])
        found.rows += [doc for doc in page if doc.blob_key not in present]


async def _remove_row(stores: Stores, doc: Document, cutoff: datetime) -> None:
    # Vectors first: were the row gone and this to fail, nothing would point
    # at them any more. Lexical chunks go with the row (ON DELETE CASCADE).
    await stores.vectors.delete_document(doc.tenant_id, doc.user_id, doc.id)
    await documents.delete_created_before(stores.pool, doc.id, cutoff)
    RECONCILED.labels("document").inc()
    log.info("Reconciled document without blob", document_id=str(doc.id))


async def reconcile_forever(clients: Clients) -> None:
    """Every ``reconcile_interval_seconds`` (0: never), from the first moment."""
    settings = clients.settings
    if settings.reconcile_interval_seconds <= 0:
        return
    stores: Stores | None = None
    while True:
        try:
            stores = stores or await _stores(settings, clients.pool, clients.blobs)
            # A refusal is logged (``Reconciliation refused``) and counted;
            # the worker goes on and tries again next time.
            report = await reconcile_once(stores)
            if report.refusal is None and (report.orphan_blobs or report.rows_without_blob):
                log.info("Reconciled", summary=report.lines()[-1])
        except Exception as exc:
            # A dependency down now may be back next time.
            log.warning("Reconciliation failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(settings.reconcile_interval_seconds)


async def _stores(settings: Settings, pool: asyncpg.Pool, blobs: BlobStore) -> Stores:
    chroma = await asyncio.to_thread(connect_chroma, settings)
    return Stores(
        pool=pool,
        blobs=blobs,
        vectors=VectorStore(chroma, None, VectorWriteLock(pool)),
        min_age_seconds=settings.reconcile_min_age_seconds,
        max_delete_fraction=settings.reconcile_max_delete_fraction,
        max_delete_floor=settings.reconcile_max_delete_floor,
    )


async def _run_once(settings: Settings, dry_run: bool, adopt_root: bool) -> Report:
    pool = await create_pool(settings)
    try:
        stores = await _stores(settings, pool, build_blob_store(settings))
        return await reconcile_once(stores, dry_run=dry_run, adopt_root=adopt_root)
    finally:
        await pool.close()


# ``rag reconcile``'s exit status when a check refused the run.
REFUSED_EXIT = 3


def command(*, dry_run: bool, adopt_root: bool = False) -> int:
    """``rag reconcile [--dry-run] [--adopt-blob-root]``: once, printing what
    it did (or would do); a refusal on stderr, exit status 3."""
    settings = Settings()
    configure_logging(settings, "reconcile")
    # stdout carries the report; log lines go to stderr.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    report = asyncio.run(_run_once(settings, dry_run, adopt_root))
    refused = report.refusal.lines() if report.refusal is not None else []
    if listed := [line for line in report.lines() if line not in refused]:
        print("\n".join(listed))
    if refused:
        print("\n".join(f"rag reconcile: {line}" for line in refused), file=sys.stderr)
        return REFUSED_EXIT
    return 0 if report.ran else 1
