"""Document status changes, fanned out to this gateway's SSE subscribers.

Every gateway process reads every partition of ``rag.ingest.events`` without
a consumer group, from the end: a client may be connected to any replica, so
each replica must see each change (a shared group would hand each change to
one replica only). Each change goes to the subscribers here who may read the
document, decided from its Postgres row, never from the message: anyone who
can publish to the topic can write a message, and the row also has what the
message lacks (the file name, the visibility, the groups it is shared with
and their members now). One row read per change, and
none while nobody here is subscribed.

A subscriber's queue is bounded: a client that stops reading is dropped (its
stream ends), never the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from shared.contracts.events import DocumentStatus, IngestStatus
from shared.runtime.clients import Clients
from shared.runtime.follow import PartitionFollower, group_less_consumer
from shared.runtime.kafka import kafka_security
from shared.storage import documents, groups
from shared.storage.documents import Document

log = structlog.get_logger(__name__)

SUBSCRIBERS = Gauge(
    "rag_gateway_document_event_subscribers",
    "Clients following document status events on this gateway",
    multiprocess_mode="livesum",
)
DROPPED_SUBSCRIBERS = Counter(
    "rag_gateway_document_event_subscribers_dropped_total",
    "Document event streams ended because the client fell behind",
)
DEFAULT_QUEUE_SIZE = 256


@dataclass(frozen=True)
class StatusEvent:
    """One ``event: status`` of the stream, as the clients' contract has it."""

    document_id: UUID
    filename: str
    status: DocumentStatus
    error: str | None
    chunks: int | None
    at: datetime

    def payload(self) -> dict[str, Any]:
        return {
            "document_id": str(self.document_id),
            "filename": self.filename,
            "status": self.status,
            "error": self.error if self.status == "failed" else None,
            "chunks": self.chunks,
            "at": self.at.isoformat(),
        }

    @classmethod
    def of_row(cls, doc: Document) -> StatusEvent:
        """The document as it stands: the snapshot sent on connect."""
        return cls(
            doc.id,
            doc.filename,
            doc.status,
            doc.error,
            _chunks(doc.status, doc.chunks),
            doc.updated_at,
        )

    @classmethod
    def of_change(cls, doc: Document, change: IngestStatus) -> StatusEvent:
        """A change as announced, named as the row names the document."""
        return cls(
            doc.id,
            doc.filename,
            change.status,
            change.error,
            _chunks(change.status, change.chunks),
            change.created_at,
        )


def _chunks(status: DocumentStatus, chunks: int) -> int | None:
    # Only an indexed document has a chunk count that means anything.
    return chunks if status == "indexed" else None


def may_read(tenant_id: UUID, user_id: UUID, doc: Document, members: Set[UUID]) -> bool:
    """shared.storage.documents' rule: the owner, anyone of the tenant once
    shared with it, or, shared with groups, ``members`` (those of the
    subscribers now in one of its groups)."""
    if doc.tenant_id != tenant_id:
        return False
    if doc.user_id == user_id or doc.visibility == "tenant":
        return True
    return doc.visibility == "groups" and user_id in members


@dataclass(eq=False)
class Subscription:
    tenant_id: UUID
    user_id: UUID
    queue: asyncio.Queue[StatusEvent | None]
    dropped: bool = False
    # Per document: the time of the state the client was last sent, so a
    # change announced before the snapshot was read is not sent after it.
    seen: dict[UUID, datetime] = field(default_factory=dict)

    def offer(self, event: StatusEvent) -> None:
        if self.dropped:
            return
        # The last slot is the end marker's.
        if self.queue.qsize() >= self.queue.maxsize - 1:
            self.end(dropped=True)
            return
        self.queue.put_nowait(event)

    def end(self, *, dropped: bool = False) -> None:
        """The stream ends at its next read (a slot is kept free for this)."""
        if dropped and not self.dropped:
            DROPPED_SUBSCRIBERS.inc()
            log.warning("Slow document event client dropped", user_id=str(self.user_id))
        self.dropped = self.dropped or dropped
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    def fresh(self, event: StatusEvent) -> bool:
        last = self.seen.get(event.document_id)
        if last is not None and event.at < last:
            return False
        self.seen[event.document_id] = event.at
        return True


class DocumentEvents:
    """The consumer of ``rag.ingest.events`` and its subscribers."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap_servers: str,
        topic: str,
        *,
        security: Mapping[str, Any] | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        """``security``: shared.runtime.kafka.kafka_security(settings)."""
        self._pool = pool
        self.topic = topic
        self._queue_size = queue_size
        self._follower = PartitionFollower(
            group_less_consumer(bootstrap_servers, security),
            topic,
            self._dispatch,
            failure="Document event consumer failed; resuming",
        )
        self._subscribers: set[Subscription] = set()

    @classmethod
    def of(cls, clients: Clients) -> DocumentEvents:
        settings = clients.settings
        return cls(
            clients.pool,
            settings.kafka_bootstrap_servers,
            clients.topics.ingest_events,
            security=kafka_security(settings),
        )

    async def start(self) -> None:
        """Every partition, from its end."""
        await self._follower.start()

    async def stop(self) -> None:
        self.end_all()
        await self._follower.stop()

    def end_all(self) -> None:
        """End every stream at its next read (drain, shutdown)."""
        for subscription in list(self._subscribers):
            subscription.end()

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: UUID, user_id: UUID) -> AsyncIterator[Subscription]:
        """Registered before the snapshot is read, so no change falls
        between the snapshot and the live changes."""
        # One extra slot: the end marker always fits.
        queue: asyncio.Queue[StatusEvent | None] = asyncio.Queue(self._queue_size + 1)
        subscription = Subscription(tenant_id, user_id, queue)
        self._subscribers.add(subscription)
        SUBSCRIBERS.inc()
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            SUBSCRIBERS.dec()

    async def _dispatch(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if not self._subscribers or record.value is None:
            return
        try:
            change = IngestStatus.model_validate_json(record.value)
        except ValidationError as exc:
            log.warning("Malformed document event dropped", offset=record.offset, error=str(exc))
            return
        doc = await documents.by_id(self._pool, change.document_id)
        if doc is None:
            return  # deleted since (or never ours to show)
        event = StatusEvent.of_change(doc, change)
        subscribers = list(self._subscribers)
        members = await self._group_readers(doc, subscribers)
        for subscription in subscribers:
            if may_read(subscription.tenant_id, subscription.user_id, doc, members):
                subscription.offer(event)

    async def _group_readers(self, doc: Document, subscribers: list[Subscription]) -> set[UUID]:
        """Which subscribers are in a group ``doc`` is shared with, now (one
        read, only for a document shared with groups)."""
        if doc.visibility != "groups":
            return set()
        users = {s.user_id for s in subscribers if s.tenant_id == doc.tenant_id}
        return await groups.readers_among(self._pool, doc.id, users)
