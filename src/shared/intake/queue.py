"""Queueing a stored document for indexing.

A document is announced ``queued`` and then waits in PostgreSQL
(``wait``) until a releaser in an ingest worker publishes its ingest
request (``ingest.release``), a few per tenant at a time, so one tenant's backlog
never stands in front of another's upload (docs/architecture.md, "Fair
ingestion"). The announcement goes out before the document can be
released, and both are keyed by the document, so a worker's ``processing``
always comes after the ``queued`` it follows.
"""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.contracts.events import IngestRequest, IngestStatus
from shared.contracts.topics import Topics
from shared.runtime.kafka import publish
from shared.storage import ingest_queue
from shared.storage.documents import Db, Document


def ingest_request(doc: Document, correlation_id: str) -> IngestRequest:
    """The request for ``doc``'s row. Refused (pydantic's ``ValidationError``)
    for a row whose blob was never finished: it has no checksum."""
    return IngestRequest(
        correlation_id=correlation_id,
        tenant_id=doc.tenant_id,
        user_id=doc.user_id,
        document_id=doc.id,
        filename=doc.filename,
        content_type=doc.content_type,
        blob_key=doc.blob_key,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
    )


def queued_status(doc: Document, correlation_id: str) -> IngestStatus:
    return IngestStatus(
        correlation_id=correlation_id,
        tenant_id=doc.tenant_id,
        user_id=doc.user_id,
        document_id=doc.id,
        status="queued",
    )


async def wait(
    broker: KafkaBroker, topics: Topics, doc: Document, correlation_id: str, *, db: Db
) -> None:
    """Announce ``doc`` ``queued`` and leave it waiting for a releaser of
    this deployment. Returns once the broker has the announcement."""
    ingest_request(doc, correlation_id)  # refused before anything is sent
    await publish(broker, topics.ingest_events, queued_status(doc, correlation_id), key=doc.id)
    await ingest_queue.hand_over(db, doc.id, topics.ingest_requests, correlation_id)
