"""Publishing one answer's reply events, numbered and coalesced.

Tokens are batched (a few words, or a few milliseconds' worth) so a long
answer is tens of messages, not thousands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypedDict
from uuid import UUID

from faststream.kafka import KafkaBroker

from shared.events import (
    ChatRequest,
    DoneReply,
    ErrorReply,
    Reply,
    Source,
    SourcesReply,
    TokenReply,
)
from shared.kafka import publish

_MAX_BUFFER_SECONDS = 0.05


class _Envelope(TypedDict):
    correlation_id: str
    stream_id: str
    tenant_id: UUID
    user_id: UUID
    conversation_id: UUID
    seq: int


@dataclass
class ReplyStream:
    broker: KafkaBroker
    default_topic: str
    request: ChatRequest
    coalesce_words: int
    _seq: int = 0
    _buffer: list[str] = field(default_factory=list)
    _buffered_since: float = 0.0
    finished: bool = False

    def _envelope(self) -> _Envelope:
        envelope: _Envelope = {
            "correlation_id": self.request.correlation_id,
            "stream_id": self.request.stream_id,
            "tenant_id": self.request.tenant_id,
            "user_id": self.request.user_id,
            "conversation_id": self.request.conversation_id,
            "seq": self._seq,
        }
        self._seq += 1
        return envelope

    async def _send(self, reply: Reply) -> None:
        target = self.request.reply_to
        if target is None:
            # Internal callers without a gateway read the default reply topic.
            await publish(self.broker, self.default_topic, reply, key=reply.stream_id)
        else:
            await publish(self.broker, target.topic, reply, partition=target.partition)

    async def sources(self, sources: list[Source]) -> None:
        await self._send(SourcesReply(**self._envelope(), sources=sources))

    async def token(self, text: str) -> None:
        if not self._buffer:
            self._buffered_since = time.monotonic()
        self._buffer.append(text)
        aged = time.monotonic() - self._buffered_since >= _MAX_BUFFER_SECONDS
        if len(self._buffer) >= self.coalesce_words or aged:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            text, self._buffer = "".join(self._buffer), []
            await self._send(TokenReply(**self._envelope(), text=text))

    async def done(self, cited: list[int] | None = None) -> None:
        await self.flush()
        await self._send(DoneReply(**self._envelope(), cited=cited or []))
        self.finished = True

    async def error(self, message: str) -> None:
        self._buffer = []
        await self._send(ErrorReply(**self._envelope(), message=message))
        self.finished = True
