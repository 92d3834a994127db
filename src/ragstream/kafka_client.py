"""``RagKafkaClient``: ragstream for internal services, over Kafka, no HTTP.

    async with RagKafkaClient(Settings()) as rag:
        doc = await rag.submit_document(tenant_id, user_id, "policy.txt", data)
        async for status in rag.statuses(doc.document_id):
            print(status.status)                 # queued, processing, indexed
        async for reply in rag.ask(tenant_id, user_id, "What is the policy?"):
            print(reply.type)                    # sources, token..., done
        found = await rag.search(tenant_id, user_id, "expense policy")
        print(found.passages[0].scores)          # dense, bm25, fused, reranker

An internal service is trusted: it acts as whichever user it names (see
docs/security.md), so give it the credentials of one (the database, the
blob store, the Kafka topics) only where that is meant.

Why a document is more than a message: ``rag.ingest.requests`` carries a
claim check, not the bytes (Kafka's message limit must never bound a
document), and the ingest worker trusts the document's Postgres row, not the
message: a request with no row is dropped. So ``submit_document`` does what
the gateway's upload does: the bytes into the blob store (``BLOB_STORE``: the
folder or volume ``BLOB_DIR``, or an S3 bucket; the one the ingest workers
read), the row within the tenant's
quota, a ``queued`` status, then the request. Settings come from the same
environment variables as the services (docs/configuration.md).

``ask`` publishes a ``ChatRequest`` whose ``reply_to`` names a partition of
the reply topic this client reads, and yields the replies of its stream
until ``done`` or ``error``; ``search`` publishes a ``SearchRequest`` the
same way and returns its one ``SearchReply``. The client reads that one partition without a
consumer group, like a gateway: a gateway that shares the partition ignores
the other's replies by their stream id, at the cost of reading them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from uuid import UUID

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from shared.config import Settings
from shared.contracts.events import (
    REPLY_ADAPTER,
    TERMINAL_REPLIES,
    ChatCancel,
    ChatOptions,
    ChatRequest,
    DocumentStatus,
    DoneReply,
    ErrorReply,
    IngestStatus,
    ReplyTo,
    SearchReply,
    SearchRequest,
    SourcesReply,
    TokenReply,
    utcnow,
)
from shared.contracts.topics import Topics
from shared.errors import InvalidInput, NotFound
from shared.intake import Intake, new_document
from shared.intake.checks import DEFAULT_CONTENT_TYPE
from shared.runtime.clients import build_blob_store
from shared.runtime.follow import PartitionFollower, group_less_consumer
from shared.runtime.kafka import create_broker, kafka_security, publish
from shared.storage import documents
from shared.storage.db import create_pool
from shared.storage.documents import Document, Lane, Visibility

log = structlog.get_logger(__name__)
Reply = TokenReply | SourcesReply | DoneReply | ErrorReply
KeyOf = Callable[[bytes | None], str | None]
_OUTCOMES: tuple[DocumentStatus, ...] = ("indexed", "failed")
_QUEUE_SIZE = 1024


@dataclass(frozen=True)
class Submitted:
    """A document accepted for indexing (as ``POST /api/documents`` answers)."""

    document_id: UUID
    correlation_id: str
    size_bytes: int
    sha256: str


class _Follower:
    """Some partitions followed from their end, each record routed to the
    queues registered for its key."""

    def __init__(self, settings: Settings, topic: str, key_of: KeyOf) -> None:
        consumer = group_less_consumer(settings.kafka_bootstrap_servers, kafka_security(settings))
        self._follower = PartitionFollower(consumer, topic, self._route)
        self._key_of = key_of
        self.queues: dict[str, list[asyncio.Queue[bytes]]] = {}

    async def start(self, partitions: list[int] | None) -> None:
        await self._follower.start(partitions)

    async def stop(self) -> None:
        await self._follower.stop()

    async def _route(self, record: ConsumerRecord[bytes, bytes]) -> None:
        key = self._key_of(record.value)
        for queue in self.queues.get(key, []) if key and record.value else []:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(record.value)

    @contextlib.contextmanager
    def follow(self, key: str) -> Iterator[asyncio.Queue[bytes]]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(_QUEUE_SIZE)
        self.queues.setdefault(key, []).append(queue)
        try:
            yield queue
        finally:
            self.queues[key].remove(queue)
            if not self.queues[key]:
                del self.queues[key]


def _document_key(value: bytes | None) -> str | None:
    try:
        return str(IngestStatus.model_validate_json(value or b"").document_id)
    except ValidationError:
        return None


def _stream_key(value: bytes | None) -> str | None:
    try:
        return REPLY_ADAPTER.validate_json(value or b"").stream_id
    except ValidationError:
        return None


class RagKafkaClient:
    """Submit documents and ask questions over Kafka. Open it once per
    process (``async with``); it holds a database pool, a producer and two
    consumers."""

    def __init__(self, settings: Settings | None = None, *, reply_partition: int = -1) -> None:
        """``reply_partition``: where this client's answers come back;
        negative counts from the last one (gateways lease from the first)."""
        self.settings = settings or Settings()
        self.topics = Topics.from_prefix(self.settings.kafka_topic_prefix)
        self.blobs = build_blob_store(self.settings)
        self.reply_partition = reply_partition
        self._pool: asyncpg.Pool | None = None
        self._broker: KafkaBroker | None = None
        self._events = _Follower(self.settings, self.topics.ingest_events, _document_key)
        self._replies: _Follower | None = None

    async def __aenter__(self) -> RagKafkaClient:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._pool = await create_pool(self.settings)
        self._broker = create_broker(self.settings, client_id="rag-kafka-client")
        await self._broker.start()
        await self._events.start(None)
        self._replies = await self._reply_follower()

    async def _reply_follower(self) -> _Follower:
        count = self.settings.kafka_reply_partitions
        partition = self.reply_partition % count
        follower = _Follower(self.settings, self.topics.chat_replies, _stream_key)
        await follower.start([partition])
        self.reply_partition = partition
        return follower

    async def stop(self) -> None:
        if self._replies is not None:
            await self._replies.stop()
        await self._events.stop()
        if self._broker is not None:
            await self._broker.stop()
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("RagKafkaClient is not started: use `async with`")
        return self._pool

    @property
    def broker(self) -> KafkaBroker:
        if self._broker is None:
            raise RuntimeError("RagKafkaClient is not started: use `async with`")
        return self._broker

    # --- documents ------------------------------------------------------------

    @property
    def intake(self) -> Intake:
        return Intake(self.settings, self.topics, self.pool, self.blobs, self.broker)

    async def submit_document(
        self,
        tenant_id: UUID,
        user_id: UUID,
        filename: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        visibility: Visibility = "private",
        lane: Lane = "interactive",
        correlation_id: str | None = None,
    ) -> Submitted:
        """Store ``data`` as ``filename`` of ``user_id`` and queue it for
        indexing, as an upload through the gateway is (``shared.intake``: the
        same checks, the same refusals). ``lane="bulk"`` for an import or a
        sync: the tenant's interactive uploads are indexed first. Refused (``InvalidInput``,
        ``UnsupportedDocument``, ``PayloadTooLarge``, ``Forbidden`` over
        quota, ``NotFound`` for an unknown or disabled user) before anything
        is written; ``Unavailable`` when a store fails (nothing is kept).
        Sharing with groups is the owner's act, through the API
        (``PATCH /api/documents/{id}``): ``visibility="groups"`` is refused."""
        if visibility == "groups":
            raise InvalidInput("share with groups through PATCH /api/documents/{id}")
        await self._check_user(tenant_id, user_id)
        doc = new_document(
            tenant_id,
            user_id,
            filename=filename,
            content_type=content_type,
            size_bytes=len(data),
            limit_bytes=self.settings.max_upload_bytes,
            visibility=visibility,
            lane=lane,
        )
        correlation_id = correlation_id or f"internal-{uuid.uuid4().hex}"
        await self.intake.admit(doc)
        doc = await self.intake.store(doc, io.BytesIO(data), correlation_id)
        return Submitted(doc.id, correlation_id, doc.size_bytes, doc.sha256)

    async def _check_user(self, tenant_id: UUID, user_id: UUID) -> None:
        found = await self.pool.fetchval(
            "SELECT 1 FROM users WHERE id=$1 AND tenant_id=$2 AND disabled_at IS NULL",
            user_id,
            tenant_id,
        )
        if found is None:
            raise NotFound("no active user with that id in that tenant")

    async def statuses(
        self, document_id: UUID, max_wait: float = 300
    ) -> AsyncIterator[IngestStatus]:
        """The document's status now (from its row), then each change from
        ``rag.ingest.events`` until ``indexed`` or ``failed``. ``TimeoutError``
        after ``max_wait`` seconds without an outcome."""
        with self._events.follow(str(document_id)) as queue:
            # Followed before the row is read: no change falls in between.
            current = await documents.by_id(self.pool, document_id)
            if current is None:
                raise NotFound("document not found")
            yield _row_status(current)
            if current.status in _OUTCOMES:
                return
            async with asyncio.timeout(max_wait):
                while True:
                    change = IngestStatus.model_validate_json(await queue.get())
                    yield change
                    if change.status in _OUTCOMES:
                        return

    # --- chat -----------------------------------------------------------------

    async def ask(
        self,
        tenant_id: UUID,
        user_id: UUID,
        message: str,
        *,
        conversation_id: UUID | None = None,
        top_k: int | None = None,
        options: ChatOptions | None = None,
        deadline_seconds: float = 60,
    ) -> AsyncIterator[Reply]:
        """Ask as ``user_id`` over what that user may read; yields the reply
        events (``sources``, ``token``..., then ``done`` or ``error``).
        The request's deadline is ``deadline_seconds`` from now; past it,
        ``TimeoutError`` (and a cancel to the workers)."""
        assert self._replies is not None, "RagKafkaClient is not started: use `async with`"
        request = ChatRequest(
            correlation_id=f"internal-{uuid.uuid4().hex}",
            tenant_id=tenant_id,
            user_id=user_id,
            conversation_id=conversation_id or uuid.uuid4(),
            message=message,
            top_k=top_k,
            options=options or ChatOptions(),
            deadline=utcnow() + timedelta(seconds=deadline_seconds),
            reply_to=ReplyTo(topic=self.topics.chat_replies, partition=self.reply_partition),
        )
        with self._replies.follow(request.stream_id) as queue:
            await publish(
                self.broker, self.topics.chat_requests, request, key=request.conversation_id
            )
            finished = False
            try:
                async with asyncio.timeout(deadline_seconds):
                    async for reply in _replies_of(request, queue):
                        yield reply
                finished = True
            finally:
                if not finished:
                    await self._cancel(request)

    # --- search ---------------------------------------------------------------

    async def search(
        self,
        tenant_id: UUID,
        user_id: UUID,
        query: str,
        *,
        top_k: int | None = None,
        options: ChatOptions | None = None,
        deadline_seconds: float = 30,
    ) -> SearchReply:
        """The passages ``user_id`` may read for ``query``, ranked as a chat
        with the same options would rank its sources, with each stage's
        scores; no answer. The reply's ``outcome`` says whether the workers
        refused or failed it. Past ``deadline_seconds``: ``TimeoutError``."""
        assert self._replies is not None, "RagKafkaClient is not started: use `async with`"
        request = SearchRequest(
            correlation_id=f"internal-{uuid.uuid4().hex}",
            tenant_id=tenant_id,
            user_id=user_id,
            query=query,
            top_k=top_k,
            options=options or ChatOptions(),
            deadline=utcnow() + timedelta(seconds=deadline_seconds),
            reply_to=ReplyTo(topic=self.topics.chat_replies, partition=self.reply_partition),
        )
        with self._replies.follow(request.stream_id) as queue:
            await publish(self.broker, self.topics.search_requests, request, key=request.stream_id)
            async with asyncio.timeout(deadline_seconds):
                return await _search_reply_of(request, queue)

    async def _cancel(self, request: ChatRequest) -> None:
        cancel = ChatCancel(
            correlation_id=request.correlation_id,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            stream_id=request.stream_id,
            reason="timeout",
        )
        with contextlib.suppress(Exception):  # best effort: the deadline stops it too
            await publish(self.broker, self.topics.chat_cancel, cancel)


async def _replies_of(request: ChatRequest, queue: asyncio.Queue[bytes]) -> AsyncIterator[Reply]:
    """The stream's replies of one answer attempt, until the terminal one;
    a reply for another tenant or user is never passed on."""
    attempt: str | None = None
    while True:
        reply = REPLY_ADAPTER.validate_json(await queue.get())
        if isinstance(reply, SearchReply):
            continue  # not a chat's
        if (reply.tenant_id, reply.user_id) != (request.tenant_id, request.user_id):
            continue
        attempt = attempt or reply.attempt_id
        if reply.attempt_id not in (None, attempt):
            continue  # a redelivered request answered twice: keep the first
        yield reply
        if reply.type in TERMINAL_REPLIES:
            return


async def _search_reply_of(request: SearchRequest, queue: asyncio.Queue[bytes]) -> SearchReply:
    """The search's one reply; one for another tenant or user is never taken."""
    while True:
        reply = REPLY_ADAPTER.validate_json(await queue.get())
        if isinstance(reply, SearchReply) and (reply.tenant_id, reply.user_id) == (
            request.tenant_id,
            request.user_id,
        ):
            return reply


def _row_status(doc: Document) -> IngestStatus:
    return IngestStatus(
        correlation_id="row",
        tenant_id=doc.tenant_id,
        user_id=doc.user_id,
        document_id=doc.id,
        status=doc.status,
        chunks=doc.chunks,
        error=doc.error,
        created_at=doc.updated_at,
    )


__all__ = ["RagKafkaClient", "Reply", "Submitted"]
