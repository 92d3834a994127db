"""Publishing one answer's reply events, numbered and coalesced.

The first words go out at once (they are what the user waits for); later
ones are batched (a few words, or a few milliseconds' worth) so a long
answer is tens of messages, not thousands. Token and sources events are
pipelined: each is queued on the producer without waiting for the broker's
acknowledgement (a round trip per token would pace the answer by the broker,
not the model). The producer keeps one partition's events in order, and
``done``/``error`` first wait for everything queued before them, so the
terminal event is only sent once the rest of the answer is safely written.

Every event carries the id of this answer attempt: if a redelivered request
is ever answered twice, the gateway relays one attempt, never a splice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict
from uuid import UUID

from faststream.kafka import KafkaBroker

from shared.contracts.events import (
    ChatRequest,
    DoneReply,
    ErrorReply,
    Reply,
    Source,
    SourcesReply,
    TokenReply,
    new_attempt_id,
)
from shared.runtime.kafka import publish, publish_nowait

_MAX_BUFFER_SECONDS = 0.05
# Sends in flight before the answer waits for the oldest: bounds the memory a
# stalled broker can make one answer hold.
_MAX_IN_FLIGHT = 64


class _Envelope(TypedDict):
    correlation_id: str
    stream_id: str
    tenant_id: UUID
    user_id: UUID
    conversation_id: UUID
    seq: int
    attempt_id: str


@dataclass
class ReplyStream:
    broker: KafkaBroker
    default_topic: str
    request: ChatRequest
    coalesce_words: int
    attempt_id: str = field(default_factory=new_attempt_id)
    _seq: int = 0
    _buffer: list[str] = field(default_factory=list)
    _buffered_since: float = 0.0
    _text_sent: bool = False
    _in_flight: list[asyncio.Future[Any]] = field(default_factory=list)
    finished: bool = False

    def _envelope(self) -> _Envelope:
        envelope: _Envelope = {
            "correlation_id": self.request.correlation_id,
            "stream_id": self.request.stream_id,
            "tenant_id": self.request.tenant_id,
            "user_id": self.request.user_id,
            "conversation_id": self.request.conversation_id,
            "seq": self._seq,
            "attempt_id": self.attempt_id,
        }
        self._seq += 1
        return envelope

    def _target(self, reply: Reply) -> tuple[str, dict[str, Any]]:
        target = self.request.reply_to
        if target is None:
            # Internal callers without a gateway read the default reply topic.
            return self.default_topic, {"key": reply.stream_id}
        return target.topic, {"partition": target.partition}

    async def _send_nowait(self, reply: Reply) -> None:
        topic, where = self._target(reply)
        self._in_flight.append(await publish_nowait(self.broker, topic, reply, **where))
        # Forget the sends that succeeded; a failed one stays, for settle() to raise.
        self._in_flight = [f for f in self._in_flight if not _succeeded(f)]
        if len(self._in_flight) > _MAX_IN_FLIGHT:
            await self.settle()

    async def settle(self, *, raise_failures: bool = True) -> None:
        """Wait for every event sent so far; raises if one of them failed."""
        pending, self._in_flight = self._in_flight, []
        await asyncio.gather(*pending, return_exceptions=not raise_failures)

    async def _send_terminal(self, reply: Reply) -> None:
        await self.settle()
        topic, where = self._target(reply)
        await publish(self.broker, topic, reply, **where)
        self.finished = True

    async def sources(self, sources: list[Source]) -> None:
        await self._send_nowait(SourcesReply(**self._envelope(), sources=sources))

    async def token(self, text: str) -> None:
        if not self._buffer:
            self._buffered_since = time.monotonic()
        self._buffer.append(text)
        aged = time.monotonic() - self._buffered_since >= _MAX_BUFFER_SECONDS
        if len(self._buffer) >= self.coalesce_words or aged or not self._text_sent:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            text, self._buffer = "".join(self._buffer), []
            self._text_sent = True
            await self._send_nowait(TokenReply(**self._envelope(), text=text))

    async def done(
        self, cited: list[int] | None = None, *, grounded: bool = True, turn: int | None = None
    ) -> None:
        await self.flush()
        await self._send_terminal(
            DoneReply(**self._envelope(), cited=cited or [], grounded=grounded, turn=turn)
        )

    async def error(self, message: str) -> None:
        self._buffer = []
        # The error event says the answer failed: a lost token changes nothing.
        await self.settle(raise_failures=False)
        await self._send_terminal(ErrorReply(**self._envelope(), message=message))


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
