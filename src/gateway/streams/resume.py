"""Resuming a stream on whichever replica the client lands on.

A client sends back the id of the last event it got (``Last-Event-ID``):
the offset of that reply on the stream's reply partition (``<offset>r`` for
the reset shown before it, ``start`` before any reply). The stream's record
in Redis (``shared.storage.chat_streams``) says whose stream it is and which
partition; this replica reads that partition from there with a consumer of
its own (its router reads its own partition from the end, and must not be
sent back), into an inbox set to go on after that event: the same answer
attempt, the next ``seq``. Every event the client missed comes once, in
order, then the rest as it is written.

If the attempt the client saw is no longer the one answering (its worker
died and another attempt holds the claim), the client is told to start over
(``reset``) and gets the new attempt whole, read from the stream's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Counter
from pydantic import ValidationError

from gateway.identity.users import User
from gateway.state import Gateway
from gateway.streams.inbox import AnyReplyEvent, Inbox
from gateway.streams.leaving import START_ID
from gateway.streams.relay import ChatRelay, RelayEvent
from shared.contracts.events import REPLY_ADAPTER, TERMINAL_REPLIES, ChatRequest, SearchReply
from shared.errors import InvalidInput
from shared.runtime.follow import group_less_consumer
from shared.runtime.kafka import kafka_security
from shared.storage import chat_claims

log = structlog.get_logger(__name__)

EVENT_ID = r"^(start|[0-9]{1,18}r?)$"
_EVENT_ID = re.compile(EVENT_ID)
# The record a Last-Event-ID names is read before answering: it is there
# (the client was sent it), so this is only a bound for a broker in trouble.
_READ_SECONDS = 10.0

STREAM_RESUMES = Counter(
    "rag_gateway_stream_resumes_total",
    "Streams resumed with GET /api/chat/stream/{id}, by where from: event (after the"
    " Last-Event-ID), start (no id, or the attempt seen was replaced), ended (the stream had"
    " ended: one terminal event), finished (the client had the terminal event already)",
    ["outcome"],
)


@dataclass(frozen=True)
class Position:
    """Where a client is: after the record at ``offset`` (None: before any
    reply), or, with ``reset``, after the reset shown before that record."""

    offset: int | None
    reset: bool = False

    @classmethod
    def parse(cls, event_id: str | None) -> Position:
        if event_id is None or event_id == START_ID:
            return cls(None)
        if not _EVENT_ID.match(event_id):
            raise InvalidInput("Last-Event-ID is not an id this server sent")
        return cls(int(event_id.rstrip("r")), event_id.endswith("r"))


class Replay:
    """One stream's replies from a given offset of its reply partition, into
    ``inbox``, as fast as the client takes them."""

    def __init__(self, gateway: Gateway, request: ChatRequest, inbox: Inbox) -> None:
        settings = gateway.clients.settings
        assert request.reply_to is not None  # a gateway's stream always has one
        self._tp = TopicPartition(request.reply_to.topic, request.reply_to.partition)
        self._consumer: AIOKafkaConsumer = group_less_consumer(
            settings.kafka_bootstrap_servers, kafka_security(settings)
        )
        self._request, self._inbox = request, inbox
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._consumer.start()
        self._consumer.assign([self._tp])

    async def record_at(self, offset: int) -> AnyReplyEvent | None:
        """The stream's reply at ``offset``; None if it is not one of it."""
        first = (await self._consumer.beginning_offsets([self._tp]))[self._tp]
        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        if not first <= offset < end:
            return None
        self._consumer.seek(self._tp, offset)
        async with asyncio.timeout(_READ_SECONDS):
            record = await self._consumer.getone(self._tp)
        return self._ours(record) if record.offset == offset else None

    def follow(self, offset: int, first: AnyReplyEvent | None = None) -> None:
        """Deliver ``first`` (the record at ``offset - 1``), then read on from ``offset``."""
        if first is not None:
            self._inbox.deliver(first, offset - 1)
        self._consumer.seek(self._tp, offset)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            await self._read_on()
        except Exception:
            # The stream's timeout ends it for the client.
            log.exception("Reading a resumed stream failed")

    async def _read_on(self) -> None:
        while True:
            record = await self._consumer.getone(self._tp)
            reply = self._ours(record)
            if reply is None:
                continue
            # Read on as the client takes them (polled: the inbox has no hook).
            while self._inbox.filling():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            self._inbox.deliver(reply, record.offset)
            if reply.type in TERMINAL_REPLIES:
                return

    def _ours(self, record: ConsumerRecord[bytes, bytes]) -> AnyReplyEvent | None:
        try:
            reply = REPLY_ADAPTER.validate_json(record.value or b"")
        except ValidationError:
            return None
        if isinstance(reply, SearchReply):  # one search's answer, never a chat's
            return None
        request = self._request
        mine = (reply.stream_id, reply.tenant_id, reply.user_id) == (
            request.stream_id,
            request.tenant_id,
            request.user_id,
        )
        return reply if mine else None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._consumer.stop()


async def resume(
    gateway: Gateway, user: User, request: ChatRequest, start: int, position: Position
) -> tuple[ChatRelay, AsyncGenerator[RelayEvent, None]] | None:
    """The stream from ``position`` on, for a connection attached to it
    (``chat_streams.attach``); None if the client has seen its end. Raises
    InvalidInput if ``position`` is not one of this stream's events. Either
    way but the first, the connection is left (as if the client had)."""
    clients = gateway.clients
    inbox = Inbox(user.tenant_id, user.id, clients.settings.stream_queue_size)
    replay = Replay(gateway, request, inbox)
    adopted = False

    def release() -> None:
        nonlocal adopted
        if adopted:
            adopted = False
            gateway.replies.release(inbox)
            gateway.spawn(replay.close())

    relay, events = ChatRelay.resumed(gateway, user, request, inbox, release)
    try:
        await replay.open()
        claim = await chat_claims.state(clients.redis, user.tenant_id, request.stream_id)
        going = await _seek(replay, inbox, claim.holder, start, position)
    except BaseException:
        going = False
        raise
    finally:
        if not going:
            await replay.close()
            relay.leave()
    gateway.replies.adopt(inbox)
    adopted = True
    return relay, events


async def _seek(
    replay: Replay, inbox: Inbox, holder: str | None, start: int, position: Position
) -> bool:
    """Set ``inbox`` to go on from ``position`` and start reading; False if
    the client has had the terminal event already."""
    if position.offset is None:
        # Nothing seen: the whole stream (the attempt answering now, if known).
        if holder is not None:
            inbox.resume_at(holder, -1)
        replay.follow(start)
        STREAM_RESUMES.labels("start").inc()
        return True
    seen = await replay.record_at(position.offset) if position.offset >= start else None
    if seen is None:
        raise InvalidInput("Last-Event-ID is not an event of this stream")
    inbox.last_id = f"{position.offset}{'r' if position.reset else ''}"
    if holder not in (None, seen.attempt_id):
        # The attempt the client saw was replaced: start over with the new one.
        inbox.resume_at(holder, -1, reset=not position.reset)
        replay.follow(start)
        STREAM_RESUMES.labels("start").inc()
        return True
    if position.reset:
        inbox.resume_at(seen.attempt_id, seen.seq - 1)
        replay.follow(position.offset + 1, first=seen)
    elif seen.type in TERMINAL_REPLIES:
        STREAM_RESUMES.labels("finished").inc()
        return False
    else:
        inbox.resume_at(seen.attempt_id, seen.seq)
        replay.follow(position.offset + 1)
    STREAM_RESUMES.labels("event").inc()
    return True
