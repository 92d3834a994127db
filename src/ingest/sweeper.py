"""Re-queuing documents that no ingest request will ever settle: still
``queued`` or ``processing`` long after their last change (their message was
lost, or committed past by an older worker).

Every ingest worker sweeps, every ``ingest_sweep_seconds``. Two sweepers
never re-queue the same document: each claims its rows with
``FOR UPDATE SKIP LOCKED`` and moves their ``updated_at`` on, in the same
transaction as the publish, so a publish that fails leaves them to the next
sweep. A re-queued document that was only slow (a long backlog) is indexed
twice, which is harmless: indexing is idempotent.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from pydantic import ValidationError

from shared.intake import queue
from shared.runtime.clients import Clients
from shared.storage import documents
from shared.storage.documents import Document

log = structlog.get_logger(__name__)

# Documents re-queued per transaction: bounds the row locks held.
BATCH = 100


async def sweep_once(clients: Clients, stuck_seconds: float) -> int:
    """Re-queue up to ``BATCH`` stuck documents; how many were."""
    async with clients.pool.acquire() as conn, conn.transaction():
        stuck = await documents.claim_stuck(conn, stuck_seconds, BATCH)
        for doc, attempts in stuck:
            await _requeue(clients, doc, attempts)
    return len(stuck)


async def _requeue(clients: Clients, doc: Document, attempts: int) -> None:
    correlation_id = f"requeue-{uuid.uuid4().hex}"
    try:
        await queue(clients.broker, clients.topics, doc, correlation_id)
    except ValidationError as exc:
        # Only a row the gateway never finished (no checksum) fails here:
        # no worker could index it; the reconciler removes such rows.
        log.warning("Stuck document cannot be re-queued", document_id=str(doc.id), error=str(exc))
        return
    log.info(
        "Re-queued stuck document",
        document_id=str(doc.id),
        status=doc.status,
        attempts=attempts,
        correlation_id=correlation_id,
    )


async def sweep_forever(clients: Clients) -> None:
    """From the worker's start (a restart after a crash is when documents
    are most likely stuck), every ``ingest_sweep_seconds`` (0: never)."""
    settings = clients.settings
    if settings.ingest_sweep_seconds <= 0:
        return
    await _started(clients)
    while True:
        try:
            while await sweep_once(clients, settings.ingest_stuck_seconds) == BATCH:
                pass  # more where those came from
        except Exception as exc:
            # A dependency down now may be back next time.
            log.warning("Sweep for stuck documents failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(settings.ingest_sweep_seconds)


async def _started(clients: Clients) -> None:
    """Wait for the worker's broker to start: re-queuing publishes on it."""
    for _ in range(3000):
        if clients.broker.running:
            return
        await asyncio.sleep(0.1)
