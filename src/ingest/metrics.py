"""The ingest worker's own metrics (dead letters and retries are counted
where they happen, in ``shared.runtime.consumer``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGEST_DURATION = Histogram(
    "rag_ingest_duration_seconds",
    "From a document's delivery to its outcome (indexed, failed, dropped), retries included",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
INGEST_BACKLOG = Gauge(
    "rag_ingest_backlog_documents",
    "Documents queued or processing, per tenant (the tenants with the most)",
    ["tenant"],
)
INGEST_OLDEST_WAIT = Gauge(
    "rag_ingest_oldest_wait_seconds",
    "Since the upload of the tenant's oldest document still queued or processing",
    ["tenant"],
)
INGEST_RELEASED = Counter(
    "rag_ingest_released_total",
    "Documents released from waiting in PostgreSQL to the ingest workers, by lane",
    ["lane"],
)
