"""Consuming events safely: validate, retry what may pass later, and
dead-letter the rest with a reason, so one bad message never stops a worker.

This is the one place where exceptions become dead-letter reasons.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.errors import RagError, Unavailable
from shared.events import DeadLetter, Event
from shared.kafka import publish
from shared.logging import bind_correlation
from shared.topics import Topics

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)
_PAYLOAD_LIMIT = 64 * 1024


def dead_letter_reason(exc: BaseException) -> tuple[str, str]:
    """(reason code, human-readable detail) for a failure."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return "invalid_message", problems
    if isinstance(exc, RagError):
        return exc.code, exc.message
    return "unhandled_error", f"{type(exc).__name__}: {exc}"


def _retryable(exc: Exception) -> bool:
    # Bad content fails the same way every time; anything else may be transient.
    return isinstance(exc, Unavailable) or not isinstance(exc, RagError)


@dataclass
class Consumer(Generic[E]):
    broker: KafkaBroker
    topic: str
    group_id: str
    model: type[E]
    handle: Callable[[E], Awaitable[None]]
    on_give_up: Callable[[E, str, str], Awaitable[None]] | None = None
    max_attempts: int = 1
    backoff_seconds: float = 0.5

    async def __call__(self, body: bytes, record: ConsumerRecord[Any, Any]) -> None:
        try:
            event = self.model.model_validate_json(body)
        except ValidationError as exc:
            await self._dead_letter(body, record, exc, correlation_id=None)
            return
        with bind_correlation(event.correlation_id):
            try:
                await self._attempt(event)
            except Exception as exc:
                reason, detail = dead_letter_reason(exc)
                await self._dead_letter(body, record, exc, correlation_id=event.correlation_id)
                if self.on_give_up is not None:
                    await self.on_give_up(event, reason, detail)

    async def _attempt(self, event: E) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.handle(event)
                return
            except Exception as exc:
                if attempt == self.max_attempts or not _retryable(exc):
                    raise
                log.warning("Retrying message", attempt=attempt, error=str(exc))
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))

    async def _dead_letter(
        self,
        body: bytes,
        record: ConsumerRecord[Any, Any],
        exc: BaseException,
        correlation_id: str | None,
    ) -> None:
        reason, detail = dead_letter_reason(exc)
        letter = DeadLetter(
            correlation_id=correlation_id,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer_group=self.group_id,
            reason=reason,
            detail=detail[:2000],
            payload=body[:_PAYLOAD_LIMIT].decode("utf-8", errors="replace"),
        )
        log.error(
            "Message dead-lettered",
            reason=reason,
            detail=letter.detail,
            topic=record.topic,
            offset=record.offset,
            exc_info=not isinstance(exc, ValidationError | RagError),
        )
        await publish(self.broker, Topics.dead_letter(self.topic), letter, key=record.key)

    def subscribe(self, *, ack_policy: AckPolicy, max_workers: int = 1) -> None:
        """Register on the broker (before it starts)."""

        async def on_message(msg: KafkaMessage) -> None:
            await self(msg.body, msg.raw_message)

        subscriber = self.broker.subscriber(
            self.topic,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            ack_policy=ack_policy,
            max_workers=max_workers,
        )
        subscriber(on_message)
