"""Accepting a checked document: the tenant's quota, the blob, the row and
the queueing, all or nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import BinaryIO
from uuid import UUID

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from shared.config import Settings
from shared.contracts.topics import Topics
from shared.errors import Unavailable
from shared.intake.queue import wait
from shared.runtime.clients import Clients
from shared.storage import documents, groups
from shared.storage.blobs import BlobStore
from shared.storage.documents import Document, Quota

log = structlog.get_logger(__name__)

# Failures of the stores an upload writes to: the caller may retry.
STORE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    KafkaError,
)
Hook = Callable[[Document], Awaitable[None]]


def _go_on() -> None:
    pass


@dataclass(frozen=True)
class Intake:
    """Where every door hands a checked document (``checks.new_document``)."""

    settings: Settings
    topics: Topics
    pool: asyncpg.Pool
    blobs: BlobStore
    broker: KafkaBroker

    @classmethod
    def of(cls, clients: Clients) -> Intake:
        return cls(clients.settings, clients.topics, clients.pool, clients.blobs, clients.broker)

    @property
    def quota(self) -> Quota:
        return Quota.of(self.settings)

    async def admit(self, doc: Document) -> None:
        """Refuse (403) a document over the tenant's quota before a byte of
        it is written; checked again, under a lock, when its row goes in."""
        await documents.check_quota(self.pool, doc.tenant_id, doc.size_bytes, self.quota)

    async def store(
        self,
        doc: Document,
        source: BinaryIO,
        correlation_id: str,
        *,
        checkpoint: Callable[[], None] = _go_on,
        accepted: Hook | None = None,
        share_with: Collection[UUID] = (),
    ) -> Document:
        """Blob, row (and its groups, ``share_with``, for visibility
        ``groups``: linked before it waits, so it is indexed with them),
        ``queued``, then waiting for release, then ``accepted`` (the
        gateway's audit entry: a document no entry accounts for is not
        kept). On any failure, neither blob nor row is left, and a store's
        failure is ``Unavailable`` (retry). ``checkpoint`` runs between the
        steps and may raise to stop them (the client went away)."""
        inserted = False
        try:
            stored = await self.blobs.put(doc.blob_key, source, self.settings.max_upload_bytes)
            doc = replace(doc, size_bytes=stored.size_bytes, sha256=stored.sha256)
            checkpoint()
            # Concurrent uploads passed ``admit`` together: only those that
            # fit get a row.
            await documents.insert_within_quota(self.pool, doc, self.quota)
            inserted = True
            if share_with:
                await groups.set_document_groups(self.pool, doc.tenant_id, doc.id, share_with)
            checkpoint()
            await wait(self.broker, self.topics, doc, correlation_id, db=self.pool)
            if accepted is not None:
                await accepted(doc)
        except BaseException as exc:
            # Not queued means not accepted: leave nothing behind.
            await self.remove(doc, row=inserted)
            if isinstance(exc, STORE_ERRORS):
                log.warning("Upload not stored", document_id=str(doc.id), error=describe(exc))
                raise Unavailable("the document could not be stored; try again shortly") from exc
            raise
        return doc

    async def remove(self, doc: Document, *, row: bool) -> None:
        """Row first, so no row is left pointing at a missing blob when both
        go; whatever cannot be removed now is left to the reconciler."""
        if row:
            await best_effort(
                "row", doc, documents.delete(self.pool, doc.tenant_id, doc.user_id, doc.id)
            )
        await best_effort("blob", doc, self.blobs.delete(doc.blob_key))


async def best_effort(what: str, doc: Document, step: Awaitable[object]) -> None:
    """A clean-up step whose failure must not hide the outcome: logged, and
    a blob or row left behind is the reconciler's to remove."""
    try:
        await step
    except Exception as exc:
        log.warning(
            "Document clean-up step failed", step=what, document_id=str(doc.id), error=describe(exc)
        )


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
