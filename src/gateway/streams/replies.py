"""Receiving reply events for this replica's streams.

The replica reads only its own partition of the reply topic, without a
consumer group, from the end: nothing before its start concerns it. Each
event goes to the stream waiting for its stream id (chosen by this gateway,
never by a client) if, and only if, it is for that stream's tenant and user;
anything else is dropped, so a misrouted or forged reply never reaches the
wrong client. The stream's inbox (gateway.streams.inbox) then keeps one answer
attempt, in order, within its bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import structlog
from aiokafka import ConsumerRecord
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from gateway.streams.inbox import AnyReplyEvent, CutReason, Inbox
from shared.contracts.events import REPLY_ADAPTER, SearchReply
from shared.runtime.follow import PartitionFollower, group_less_consumer

log = structlog.get_logger(__name__)

__all__ = ["REPLY_DROPS", "AnyReplyEvent", "ReplyRouter"]
UNCLAIMED_REPLIES = Counter(
    "rag_gateway_unclaimed_replies_total", "Replies read that no open stream here waited for"
)
REPLY_DROPS = Counter(
    "rag_gateway_reply_drops_total",
    "Replies for an open stream not relayed: duplicate, out_of_order, other_attempt"
    " (a second answer to one request), overflow (the client fell behind), after_cut",
    ["reason"],
)
STREAMS_ACTIVE = Gauge(
    "rag_gateway_streams_active", "Chat streams open on this gateway", multiprocess_mode="livesum"
)
DEFAULT_QUEUE_SIZE = 256
# Event-loop turns a filling stream's writer gets before the router reads on.
CATCH_UP_TURNS = 32


class OneReply:
    """A search waiting for its reply."""

    def __init__(self, tenant_id: UUID, user_id: UUID) -> None:
        self.tenant_id, self.user_id = tenant_id, user_id
        self.reply: asyncio.Future[SearchReply] = asyncio.get_running_loop().create_future()


class ReplyRouter:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        partition: int,
        *,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        """``security``: shared.runtime.kafka.kafka_security(settings)."""
        self.topic = topic
        self.partition = partition
        self._follower = PartitionFollower(
            group_less_consumer(bootstrap_servers, security),
            topic,
            self._route,
            failure="Reply consumer failed; resuming",
        )
        self._streams: dict[str, Inbox] = {}
        # Streams resumed here, read from their own partition and offset by
        # gateway.streams.resume: only counted (and cut on shutdown) here.
        self._resumed: dict[int, Inbox] = {}
        # Searches waiting for their one reply (gateway.streams.search).
        self._searches: dict[str, OneReply] = {}

    async def start(self) -> None:
        await self._follower.start([self.partition])

    async def stop(self) -> None:
        await self._follower.stop()

    async def partitions_of(self, topic: str) -> list[int]:
        return await self._follower.partitions(topic)

    def open(
        self, stream_id: str, tenant_id: UUID, user_id: UUID, size: int = DEFAULT_QUEUE_SIZE
    ) -> Inbox:
        """Register before publishing the request, so no reply can be missed."""
        inbox = Inbox(tenant_id, user_id, size)
        if self._streams.setdefault(stream_id, inbox) is not inbox:
            raise ValueError(f"stream {stream_id} is open already")
        STREAMS_ACTIVE.inc()
        return inbox

    async def position(self) -> int:
        """An offset of the current partition at or before any record
        published from now on: where a stream opened now may be read from."""
        return await self._follower.position(self.partition)

    def adopt(self, inbox: Inbox) -> None:
        """Count a resumed stream among the open ones (``release`` it)."""
        self._resumed[id(inbox)] = inbox
        STREAMS_ACTIVE.inc()

    def release(self, inbox: Inbox) -> None:
        if self._resumed.pop(id(inbox), None) is not None:
            STREAMS_ACTIVE.dec()

    def close(self, stream_id: str) -> None:
        if self._streams.pop(stream_id, None) is not None:
            STREAMS_ACTIVE.dec()

    def expect(self, stream_id: str, tenant_id: UUID, user_id: UUID) -> OneReply:
        """Register a search before publishing it; ``forget`` it when done."""
        waiter = OneReply(tenant_id, user_id)
        if self._searches.setdefault(stream_id, waiter) is not waiter:
            raise ValueError(f"search {stream_id} is open already")
        return waiter

    def forget(self, stream_id: str) -> None:
        self._searches.pop(stream_id, None)

    def cut_all(self, reason: CutReason) -> None:
        """End every open stream at its next read (on shutdown)."""
        for inbox in [*self._streams.values(), *self._resumed.values()]:
            inbox.cut(reason)

    @property
    def open_streams(self) -> int:
        return len(self._streams) + len(self._resumed)

    @property
    def running(self) -> bool:
        """Whether replies are being read at all."""
        return self._follower.running

    async def move(self, partition: int) -> None:
        """Read ``partition`` too, from its end, and have new streams use it.
        Partitions read before stay assigned, where they are: streams opened
        on them still get their replies."""
        await self._follower.add(partition)
        self.partition = partition

    async def _route(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            reply = REPLY_ADAPTER.validate_json(record.value or b"")
        except ValidationError as exc:
            log.error("Malformed reply dropped", offset=record.offset, error=str(exc))
            return
        if isinstance(reply, SearchReply):
            self._answer_search(reply, record.offset)
            return
        stream = self._streams.get(reply.stream_id)
        if stream is None:
            UNCLAIMED_REPLIES.inc()
            return
        if (reply.tenant_id, reply.user_id) != (stream.tenant_id, stream.user_id):
            UNCLAIMED_REPLIES.inc()
            log.warning("Reply for another owner dropped", offset=record.offset)
            return
        self._deliver(stream, reply, record.offset)
        if stream.filling():
            await self._let_reader_catch_up(stream)

    def _answer_search(self, reply: SearchReply, offset: int) -> None:
        """The same rule as a stream's: only the search with its id, only if
        the reply is for that search's tenant and user; the first reply heard."""
        waiter = self._searches.get(reply.stream_id)
        if waiter is None or waiter.reply.done():
            UNCLAIMED_REPLIES.inc()
            return
        if (reply.tenant_id, reply.user_id) != (waiter.tenant_id, waiter.user_id):
            UNCLAIMED_REPLIES.inc()
            log.warning("Reply for another owner dropped", offset=offset)
            return
        waiter.reply.set_result(reply)

    @staticmethod
    async def _let_reader_catch_up(stream: Inbox) -> None:
        """A fetch hands over hundreds of records without ever yielding to
        the event loop, so a stream's writer, however fast its client, would
        get no turn until its queue overflowed. Yield while it is filling:
        a client that reads keeps up; one that does not still overflows
        (the turns are bounded), and never stalls the other streams."""
        for _ in range(CATCH_UP_TURNS):
            await asyncio.sleep(0)
            if not stream.filling():
                return

    @staticmethod
    def _deliver(stream: Inbox, reply: AnyReplyEvent, offset: int) -> None:
        dropped = stream.deliver(reply, offset)
        if dropped is None:
            return
        REPLY_DROPS.labels(dropped).inc()
        log.info(
            "Reply dropped",
            reason=dropped,
            stream_id=reply.stream_id,
            seq=reply.seq,
            attempt_id=reply.attempt_id,
            correlation_id=reply.correlation_id,
        )
