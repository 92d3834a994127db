"""Receiving reply events for this replica's streams.

The replica reads only its own partition of the reply topic, without a
consumer group, from the end: nothing before its start concerns it. Each
event goes to the stream waiting for its stream id (chosen by this gateway,
never by a client) if, and only if, it is for that stream's tenant and user;
anything else is dropped, so a misrouted or forged reply never reaches the
wrong client.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Counter
from pydantic import ValidationError

from shared.events import REPLY_ADAPTER, DoneReply, ErrorReply, SourcesReply, TokenReply

log = structlog.get_logger(__name__)

AnyReplyEvent = TokenReply | SourcesReply | DoneReply | ErrorReply
UNCLAIMED_REPLIES = Counter(
    "rag_gateway_unclaimed_replies_total", "Replies read that no open stream here waited for"
)


@dataclass(frozen=True)
class _Stream:
    queue: asyncio.Queue[AnyReplyEvent]
    tenant_id: UUID
    user_id: UUID


class ReplyRouter:
    def __init__(self, bootstrap_servers: str, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
        )
        self._streams: dict[str, _Stream] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        tp = TopicPartition(self.topic, self.partition)
        self._consumer.assign([tp])
        await self._consumer.start()
        await self._consumer.seek_to_end(tp)
        # Resolve the end offset now, so no reply published after start-up is
        # skipped by a lazy offset reset.
        await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def open(self, stream_id: str, tenant_id: UUID, user_id: UUID) -> asyncio.Queue[AnyReplyEvent]:
        """Register before publishing the request, so no reply can be missed."""
        queue: asyncio.Queue[AnyReplyEvent] = asyncio.Queue()
        self._streams[stream_id] = _Stream(queue, tenant_id, user_id)
        return queue

    def close(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except Exception:
                # Keep routing: one broken fetch must not silence every stream.
                log.exception("Reply consumer failed; resuming")
                await asyncio.sleep(1)

    async def _consume(self) -> None:
        async for record in self._consumer:
            try:
                reply = REPLY_ADAPTER.validate_json(record.value)
            except ValidationError as exc:
                log.error("Malformed reply dropped", offset=record.offset, error=str(exc))
                continue
            stream = self._streams.get(reply.stream_id)
            if stream is None:
                UNCLAIMED_REPLIES.inc()
                continue
            if (reply.tenant_id, reply.user_id) != (stream.tenant_id, stream.user_id):
                UNCLAIMED_REPLIES.inc()
                log.warning("Reply for another owner dropped", offset=record.offset)
                continue
            stream.queue.put_nowait(reply)
