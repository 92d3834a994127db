"""One chat round trip: publish the request, then yield its replies as they
arrive on this replica's reply partition, ending with exactly one terminal
event (done or error from the worker, or a timeout or cut raised here).

While it waits, it watches the worker's claim on the stream
(``shared.storage.chat_claims``): a claim whose lease ran out belongs to a
worker that died mid-answer, so the request is published again for another
worker, up to ``CHAT_MAX_ATTEMPTS`` attempts, and the client is told to
start over (``AttemptReset``) once the new attempt speaks.

A ``resumable`` stream (``/api/chat/stream``) is recorded in Redis
(``shared.storage.chat_streams``) so a client can resume it here or on
another replica (``gateway.streams.resume``); when its client leaves, its
answer is cancelled only if nobody resumes it within
STREAM_RESUME_GRACE_SECONDS (``gateway.streams.leaving``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal
from uuid import UUID

import structlog
from prometheus_client import Counter
from redis.exceptions import RedisError

from gateway.identity.users import User
from gateway.state import Gateway
from gateway.streams import leaving
from gateway.streams.inbox import (
    AnyReplyEvent,
    AttemptReset,
    Inbox,
    StreamCut,
    StreamEndReason,
)
from shared.contracts.events import (
    TERMINAL_REPLIES,
    ChatCancel,
    ChatOptions,
    ChatRequest,
    ReplyTo,
    Turn,
    new_stream_id,
    utcnow,
)
from shared.runtime.kafka import publish, publish_nowait
from shared.storage import chat_claims

log = structlog.get_logger(__name__)

STREAM_TIMEOUTS = Counter(
    "rag_gateway_stream_timeouts_total", "Streams ended with `timeout`: no event in time"
)
STREAM_CANCELS = Counter(
    "rag_gateway_stream_cancels_total",
    "Generations the gateway asked the workers to stop, by why: client_left, timeout,"
    " overflow (the client fell behind), shutdown (the drain's grace ran out)",
    ["reason"],
)
ANSWER_RETRIES = Counter(
    "rag_gateway_answer_retries_total",
    "Chat requests published again because the worker answering them died",
)
CancelReason = Literal["client_left", "timeout", "overflow", "shutdown", "worker_lost"]
CUT_MESSAGES: dict[StreamEndReason, str] = {
    "overflow": "the answer came faster than it was read; please ask again",
    "shutdown": "this server is restarting; please ask again",
    "worker_lost": "the answer was interrupted too many times; please ask again",
    "abandoned": "the answer was stopped: its client left and did not resume it in time;"
    " please ask again",
}


@dataclass(frozen=True)
class StreamTimeout:
    seconds: float
    type: Literal["timeout"] = "timeout"


@dataclass(frozen=True)
class StreamEnded:
    """An error ending made here, not by a worker: the stream was cut."""

    reason: StreamEndReason
    type: Literal["error"] = "error"

    @property
    def message(self) -> str:
        return CUT_MESSAGES[self.reason]


RelayEvent = AnyReplyEvent | AttemptReset | StreamTimeout | StreamEnded


@dataclass
class ChatRelay:
    gateway: Gateway
    user: User
    correlation_id: str
    conversation_id: UUID
    timeout: float
    # Ours, never the client's: X-Request-ID (the correlation id) is only logged.
    stream_id: str = field(default_factory=new_stream_id)
    _finished: bool = False
    _inbox: Inbox | None = None
    _request: ChatRequest | None = None
    # Attempts whose worker was found dead (the request was asked again).
    _lost: set[str | None] = field(default_factory=set)
    # Kept in Redis for a client to resume; leaving starts the grace.
    resumable: bool = False
    # How the inbox is given back (a resumed stream's is not the router's).
    _release: Callable[[], None] | None = None

    @classmethod
    def resumed(
        cls,
        gateway: Gateway,
        user: User,
        request: ChatRequest,
        inbox: Inbox,
        release: Callable[[], None],
    ) -> tuple[ChatRelay, AsyncGenerator[RelayEvent, None]]:
        """A relay of a stream opened before (here or on another replica),
        reading ``inbox`` (filled by gateway.streams.resume)."""
        relay = cls(
            gateway=gateway,
            user=user,
            correlation_id=request.correlation_id,
            conversation_id=request.conversation_id,
            timeout=(request.deadline - request.created_at).total_seconds(),
            stream_id=request.stream_id,
            resumable=True,
            _inbox=inbox,
            _request=request,
            _release=release,
        )
        return relay, relay._relay(inbox)

    @property
    def event_id(self) -> str:
        """The SSE id of the event just yielded: where a client resumes from."""
        return (self._inbox.last_id if self._inbox is not None else "") or leaving.START_ID

    async def start(
        self,
        message: str,
        top_k: int | None,
        options: ChatOptions,
        history: Sequence[Turn] | None = None,
    ) -> AsyncGenerator[RelayEvent, None]:
        """Publish the request; the returned iterator yields its replies.
        ``history``: the conversation so far, when the client keeps it."""
        clients = self.gateway.clients
        replies = self.gateway.replies
        inbox = self._inbox = replies.open(
            self.stream_id, self.user.tenant_id, self.user.id, clients.settings.stream_queue_size
        )
        request = ChatRequest(
            correlation_id=self.correlation_id,
            stream_id=self.stream_id,
            tenant_id=self.user.tenant_id,
            user_id=self.user.id,
            conversation_id=self.conversation_id,
            message=message,
            top_k=top_k,
            options=options,
            deadline=utcnow() + timedelta(seconds=self.timeout),
            reply_to=ReplyTo(topic=replies.topic, partition=replies.partition),
            history=None if history is None else list(history),
        )
        self._request = request
        try:
            if self.resumable:
                start = await replies.position()
                self.resumable = await leaving.record(self.gateway, request, start)
            await publish(
                clients.broker, clients.topics.chat_requests, request, key=self.conversation_id
            )
        except BaseException:
            replies.close(self.stream_id)
            raise
        return self._relay(inbox)

    async def _relay(self, inbox: Inbox) -> AsyncGenerator[RelayEvent, None]:
        try:
            while True:
                try:
                    reply = await self._next(inbox)
                except TimeoutError:
                    log.warning("Stream timeout", stream_timeout=self.timeout)
                    STREAM_TIMEOUTS.inc()
                    self._end("timeout")
                    yield StreamTimeout(self.timeout)
                    return
                except StreamCut as cut:
                    log.warning("Stream cut", reason=cut.reason)
                    self._end(cut.reason)
                    yield StreamEnded(cut.reason)
                    return
                if reply.type in TERMINAL_REPLIES:
                    self._finished = True
                yield reply
                if self._finished:
                    return
        finally:
            if self._release is not None:
                self._release()
            else:
                self.gateway.replies.close(self.stream_id)
            if not self._finished:
                # Closed while waiting to send: the client left or stopped
                # reading (and may have overflowed its inbox meanwhile).
                log.info("Client left before the answer finished")
                self._end(inbox.cut_reason or "client_left")

    async def _next(self, inbox: Inbox) -> AnyReplyEvent | AttemptReset:
        if inbox.pending():
            # Only a reader that has to wait pays for a timer: in a burst
            # every reply after the first is already queued.
            return await inbox.get()
        lease = self.gateway.clients.settings.chat_claim_lease_seconds
        idle = 0.0
        while True:
            # Every half lease without a reply, a look at the worker's claim.
            wait = min(lease / 2, self.timeout - idle)
            try:
                async with asyncio.timeout(wait):
                    return await inbox.get()
            except TimeoutError:
                idle += wait
                if idle >= self.timeout:
                    raise
            await self._rescue(inbox)

    async def _rescue(self, inbox: Inbox) -> None:
        """Ask again if the worker answering died (its claim's lease ran out)."""
        assert self._request is not None
        clients = self.gateway.clients
        try:
            claim = await chat_claims.state(clients.redis, self.user.tenant_id, self.stream_id)
        except (RedisError, OSError):
            return  # no claims to read: the stream's timeout still ends it
        if claim.state != "orphaned" or claim.holder in self._lost:
            return  # answering, answered, not taken yet, or asked again already
        self._lost.add(claim.holder)
        if inbox.attempts >= clients.settings.chat_max_attempts:
            inbox.cut("worker_lost")
            return
        attempt = inbox.reopen()
        ANSWER_RETRIES.inc()
        log.warning("Worker answering the stream was lost; asking again", attempt=attempt)
        await self._ask_again(self._request)

    async def _ask_again(self, request: ChatRequest) -> None:
        """The request on every partition: the one it went to first may be
        the dead worker's until its group notices (seconds), while any live
        worker reading a copy claims it at once; the other copies find it
        claimed and are skipped."""
        clients = self.gateway.clients
        topic, key = clients.topics.chat_requests, self.conversation_id
        partitions: list[int | None] = list(self.gateway.request_partitions) or [None]
        sent = [
            await publish_nowait(clients.broker, topic, request, key=key, partition=p)
            for p in partitions
        ]
        await asyncio.gather(*sent)

    def pending(self) -> int:
        """Replies that arrived and are not yet relayed: the next one is
        ready without waiting when this is above zero."""
        return self._inbox.pending() if self._inbox is not None else 0

    def _end(self, reason: CancelReason) -> None:
        """The stream ends before its answer: have the workers stop it, or,
        if this is one connection leaving a resumable stream, once nobody
        resumed it in time."""
        self._finished = True
        if self.resumable:
            stream = leaving.Leaving(self.gateway, self.user.tenant_id, self.stream_id)
            if reason in leaving.LEAVING:
                stream.leave(reason, lambda: self._cancel(reason))
                return
            stream.end(reason)
        self._cancel(reason)

    def leave(self) -> None:
        """This connection is gone before the stream began (or had ended
        for it): as when a client leaves."""
        if not self._finished:
            self._end("client_left")

    def _cancel(self, reason: CancelReason) -> None:
        STREAM_CANCELS.labels(reason).inc()
        cancel = ChatCancel(
            correlation_id=self.correlation_id,
            stream_id=self.stream_id,
            tenant_id=self.user.tenant_id,
            user_id=self.user.id,
            # The wire keeps its two reasons: workers stop either way.
            reason="timeout" if reason == "timeout" else "client_disconnected",
        )
        # A task of its own: this may run while the request's scope is being
        # cancelled, where an await would be cancelled too.
        self.gateway.spawn(
            publish(
                self.gateway.clients.broker,
                self.gateway.clients.topics.chat_cancel,
                cancel,
                key=self.stream_id,
            )
        )
