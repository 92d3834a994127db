"""Each tenant's ingestion backlog, for operators: how many of its documents
are queued or processing, and how long the oldest has waited since its
upload (``rag_ingest_backlog_documents``, ``rag_ingest_oldest_wait_seconds``,
the alert ``RagTenantIngestWaiting``; docs/runbook.md, "A tenant's documents
wait"). Every ingest worker samples the same table, so the figures are the
same on each: read them with ``max by (tenant)``."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from ingest.metrics import INGEST_BACKLOG, INGEST_OLDEST_WAIT
from shared.runtime.clients import Clients
from shared.runtime.metrics import SAMPLE_SECONDS
from shared.storage import documents

log = structlog.get_logger(__name__)

# Tenants reported, those with the most documents waiting: bounds the series.
TOP_TENANTS = 20


async def sample_once(pool: asyncpg.Pool) -> None:
    waiting = await documents.backlog_by_tenant(pool, TOP_TENANTS)
    # Series of tenants no longer among the waiting go, not stay at their last value.
    INGEST_BACKLOG.clear()
    INGEST_OLDEST_WAIT.clear()
    for backlog in waiting:
        INGEST_BACKLOG.labels(backlog.tenant).set(backlog.documents)
        INGEST_OLDEST_WAIT.labels(backlog.tenant).set(backlog.oldest_seconds)


async def sample_forever(clients: Clients, interval: float = SAMPLE_SECONDS) -> None:
    while True:
        try:
            await sample_once(clients.pool)
        except Exception as exc:
            # A metric must never take a worker down; the gap shows.
            log.warning("Backlog sampling failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval)
