"""Re-queuing documents that no ingest request will ever settle: still
``queued`` or ``processing`` long after their last change although their
request was consumed (a worker committed past it without an outcome), is
gone from the log (deleted by retention before it was read, or the topic
was made anew), or was never recorded. A request on another topic is
another deployment's (another ``KAFKA_TOPIC_PREFIX``) and left alone.

A document waiting its turn is not stuck. One not released yet waits in
PostgreSQL for the releasers (``ingest.release``). Once released, its
request's place on Kafka (topic, partition, offset) is recorded on its row,
and a request at or past the ingest group's committed offset on its
partition has not been read yet, however long the backlog in front of it.
So a bulk import is not re-published over and over while it waits.

Every ingest worker sweeps, every ``ingest_sweep_seconds``. Two sweepers
never re-queue the same document: each claims its rows with
``FOR UPDATE SKIP LOCKED`` and moves their ``updated_at`` on, in the same
transaction as the publish, so a publish that fails leaves them to the next
sweep. A document seen ``processing`` is re-queued without a new ``queued``
status: its readers do not see it go back.
"""

from __future__ import annotations

import asyncio
import uuid

import structlog
from pydantic import ValidationError

from ingest.release import broker_started, resend
from shared.runtime.clients import Clients
from shared.runtime.metrics import Positions
from shared.storage import documents
from shared.storage.documents import Conn, Document

log = structlog.get_logger(__name__)

# Documents re-queued per transaction: bounds the row locks held.
BATCH = 100


async def sweep_once(clients: Clients, stuck_seconds: float, positions: Positions) -> int:
    """Re-queue up to ``BATCH`` stuck documents; how many were.
    ``positions``: the ingest group's and the log's, on the requests topic
    (a request between them is still waiting)."""
    topic = clients.topics.ingest_requests
    async with clients.pool.acquire() as conn, conn.transaction():
        stuck = await documents.claim_stuck(conn, stuck_seconds, BATCH, topic, positions)
        for doc, attempts in stuck:
            await _requeue(clients, conn, doc, attempts)
    return len(stuck)


async def _requeue(clients: Clients, conn: Conn, doc: Document, attempts: int) -> None:
    correlation_id = f"requeue-{uuid.uuid4().hex}"
    try:
        await resend(clients.broker, clients.topics, conn, doc, correlation_id)
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
    await broker_started(clients)
    while True:
        try:
            positions = await _positions(clients)
            while await sweep_once(clients, settings.ingest_stuck_seconds, positions) == BATCH:
                pass  # more where those came from
        except Exception as exc:
            # A dependency down now may be back next time.
            log.warning("Sweep for stuck documents failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(settings.ingest_sweep_seconds)


async def _positions(clients: Clients) -> Positions:
    """The ingest group's committed offsets and the log's bounds on the
    requests topic. Read before the rows: a request consumed meanwhile looks
    waiting until the next sweep, never the other way round."""
    if clients.lag is None:
        raise RuntimeError("the sweeper needs the ingest group's offsets (open_clients lag_group)")
    return await clients.lag.positions(clients.topics.ingest_requests)
