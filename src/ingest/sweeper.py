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

import asyncpg
import structlog
from pydantic import ValidationError

from shared.runtime.clients import Clients
from shared.runtime.kafka import publish
from shared.storage import documents

log = structlog.get_logger(__name__)

# Documents re-queued per transaction: bounds the row locks held.
BATCH = 100

_STUCK = """
UPDATE documents AS d SET updated_at = now()
FROM (
    SELECT id FROM documents
    WHERE status IN ('queued', 'processing') AND updated_at < now() - make_interval(secs => $1)
    ORDER BY updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) AS stuck
WHERE d.id = stuck.id
RETURNING d.id, d.tenant_id, d.user_id, d.filename, d.content_type, d.blob_key,
          d.size_bytes, d.sha256, d.status, d.attempts
"""


async def sweep_once(clients: Clients, stuck_seconds: float) -> int:
    """Re-queue up to ``BATCH`` stuck documents; how many were."""
    async with clients.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_STUCK, float(stuck_seconds), BATCH)
        for row in rows:
            await _requeue(clients, row)
    return len(rows)


async def _requeue(clients: Clients, row: asyncpg.Record) -> None:
    try:
        request = documents.ingest_request(row, f"requeue-{uuid.uuid4().hex}")
    except ValidationError as exc:
        # Only a row the gateway never finished (no checksum) fails here:
        # no worker could index it; the reconciler removes such rows.
        log.warning(
            "Stuck document cannot be re-queued", document_id=str(row["id"]), error=str(exc)
        )
        return
    queued = documents.queued_status(row, request.correlation_id)
    await publish(clients.broker, clients.topics.ingest_events, queued, key=row["id"])
    await publish(clients.broker, clients.topics.ingest_requests, request, key=row["id"])
    log.info(
        "Re-queued stuck document",
        document_id=str(row["id"]),
        status=row["status"],
        attempts=row["attempts"],
        correlation_id=request.correlation_id,
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
