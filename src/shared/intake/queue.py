"""Queueing a stored document for indexing: a ``queued`` status, then the
ingest request, both keyed by the document, so they share a partition and a
worker's ``processing`` always comes after the ``queued`` it follows."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from shared.contracts.events import IngestRequest, IngestStatus
from shared.contracts.topics import Topics
from shared.runtime.kafka import publish
from shared.storage import documents
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


async def queue(
    broker: KafkaBroker,
    topics: Topics,
    doc: Document,
    correlation_id: str,
    *,
    db: Db,
    announce: bool = True,
) -> None:
    """Publish ``doc``'s ``queued`` status (unless ``announce`` is false: a
    document seen ``processing`` stays so for its readers) and its ingest
    request, then record where the request sits (``db``: the connection
    whose transaction holds the row, if one does). Returns once the broker
    has both."""
    request = ingest_request(doc, correlation_id)  # refused before anything is sent
    if announce:
        await publish(broker, topics.ingest_events, queued_status(doc, correlation_id), key=doc.id)
    sent = await publish(broker, topics.ingest_requests, request, key=doc.id)
    await documents.record_request(db, doc.id, sent.topic, sent.partition, sent.offset)
