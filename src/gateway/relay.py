"""One chat round trip: publish the request, then yield its replies as they
arrive on this replica's reply partition, ending with exactly one terminal
event (done, error, or a timeout raised here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal
from uuid import UUID

import structlog

from gateway.replies import AnyReplyEvent
from gateway.state import Gateway
from gateway.users import User
from shared.events import (
    TERMINAL_REPLIES,
    ChatCancel,
    ChatOptions,
    ChatRequest,
    ReplyTo,
    new_stream_id,
    utcnow,
)
from shared.kafka import publish

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StreamTimeout:
    seconds: float
    type: Literal["timeout"] = "timeout"


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

    async def start(
        self, message: str, top_k: int | None, options: ChatOptions
    ) -> AsyncIterator[AnyReplyEvent | StreamTimeout]:
        """Publish the request; the returned iterator yields its replies."""
        clients = self.gateway.clients
        replies = self.gateway.replies
        queue = replies.open(self.stream_id, self.user.tenant_id, self.user.id)
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
        )
        try:
            await publish(
                clients.broker, clients.topics.chat_requests, request, key=self.conversation_id
            )
        except BaseException:
            replies.close(self.stream_id)
            raise
        return self._relay(queue)

    async def _relay(
        self, queue: asyncio.Queue[AnyReplyEvent]
    ) -> AsyncIterator[AnyReplyEvent | StreamTimeout]:
        try:
            while True:
                try:
                    reply = await asyncio.wait_for(queue.get(), self.timeout)
                except TimeoutError:
                    log.warning("Stream timeout", stream_timeout=self.timeout)
                    self._finished = True
                    self._cancel("timeout")
                    yield StreamTimeout(self.timeout)
                    return
                if reply.type in TERMINAL_REPLIES:
                    self._finished = True
                yield reply
                if self._finished:
                    return
        finally:
            self.gateway.replies.close(self.stream_id)
            if not self._finished:
                log.info("Client left before the answer finished")
                self._cancel("client_disconnected")

    def _cancel(self, reason: Literal["timeout", "client_disconnected"]) -> None:
        # A task of its own: this runs while the request's scope is being
        # cancelled, where an await would be cancelled too.
        cancel = ChatCancel(
            correlation_id=self.correlation_id,
            stream_id=self.stream_id,
            tenant_id=self.user.tenant_id,
            user_id=self.user.id,
            reason=reason,
        )
        self.gateway.spawn(
            publish(
                self.gateway.clients.broker,
                self.gateway.clients.topics.chat_cancel,
                cancel,
                key=self.stream_id,
            )
        )
