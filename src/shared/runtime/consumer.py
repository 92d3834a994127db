"""Consuming events safely: validate, retry what may pass later, and
dead-letter the rest with a reason, so one bad message never stops a worker.

This is the one place where exceptions become dead-letter reasons.

With ``retry_transient`` on (ingestion), an offset is committed only after a
definite outcome: the handler returned, or the message was dead-lettered and
``on_give_up`` recorded it. Anything that may pass later (a dependency down,
including the dead-letter publish or the status write itself) is retried
with exponential backoff for as long as the worker runs: the handler raises
FastStream's ``NackMessage``, which seeks the partition back to the message,
so the partition waits while the consumer keeps polling (and so stays in its
group). On shutdown a retry stops at once, uncommitted, and the message is
redelivered to whoever owns the partition next.

What is transient is decided by cause (``is_transient``): a dependency that
refused, reset, timed out or said it cannot serve now. A content error
(``InvalidInput``) is dead-lettered at once. Anything else (a parser or
library choking on hostile content, or a bug) is tried again, each try
counted, and after ``max_attempts`` failed tries dead-lettered as
``unexpected_error: <ExceptionClass>``: a poison document costs a few tries
and then the partition moves on.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
import httpx
import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.contracts.events import DeadLetter, Event
from shared.contracts.topics import Topics
from shared.errors import RagError, Unavailable
from shared.runtime.kafka import publish
from shared.runtime.logging import bind_correlation

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Event)
_PAYLOAD_LIMIT = 64 * 1024
# Every request event is a few KB at most; anything far bigger is not one
# and is not worth parsing.
MAX_MESSAGE_BYTES = 256 * 1024
# How often a backoff sleep looks whether the worker is stopping.
_STOP_POLL_SECONDS = 0.2

DEAD_LETTERS = Counter(
    "rag_dead_letters_total",
    "Messages dead-lettered, by source topic and reason",
    ["topic", "reason"],
)
RETRIES = Counter(
    "rag_ingest_retries_total",
    "Transient failures retried in process (ingestion: a dependency was down)",
    ["topic", "error"],
)


class MessageTooLarge(RagError):
    code = "message_too_large"


UNEXPECTED = "unexpected_error"

# A dependency being unavailable, by cause: the connection failed, timed out,
# or the service said it cannot serve now. Only these wait for as long as it
# takes; anything else is this message's own problem, or a bug.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    Unavailable,
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is one)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection or pool closed under us
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
    httpx.TransportError,  # Chroma's HTTP client: connect, read, write, pool
)


def dead_letter_reason(exc: BaseException) -> tuple[str, str]:
    """(reason code, human-readable detail) for a failure. An unexpected
    exception is named by its class alone: its message may quote the content
    (a parser's error about the bytes it choked on)."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return "invalid_message", problems
    if isinstance(exc, RagError):
        return exc.code, exc.message
    return UNEXPECTED, f"{UNEXPECTED}: {type(exc).__name__}"


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is unavailable (and so may pass
    later), judged by its cause, not by whether it is one of ours."""
    return isinstance(exc, _UNAVAILABLE)


def backoff_delay(retries: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``retries + 1``: doubling from
    ``base``, never more than ``cap``."""
    return float(min(cap, base * 2 ** min(retries, 30)))


@dataclass
class _Delivery:
    """One message being worked on, across its retries (which FastStream
    hands back as redeliveries of the same offset)."""

    offset: int
    started: float = field(default_factory=time.monotonic)
    retries: int = 0
    claimed: bool = False
    failures: int = 0  # tries that raised an unexpected error
    verdict: tuple[str, str] | None = None  # the permanent failure being recorded
    dead_lettered: bool = False


def _always() -> bool:
    return True


@dataclass
class Consumer(Generic[E]):
    broker: KafkaBroker
    topic: str
    group_id: str
    model: type[E]
    # Returns an outcome label for ``duration`` ("indexed", "dropped", ...).
    handle: Callable[[E], Awaitable[str | None]]
    on_give_up: Callable[[E, str, str], Awaitable[None]] | None = None
    # Once per delivery, before the first try (not again for a retry); may
    # raise a permanent error to dead-letter the message.
    on_delivery: Callable[[E], Awaitable[None]] | None = None
    retry_transient: bool = False
    # With retry_transient: tries of one delivery that may end in an
    # unexpected error (a bug, or content a parser chokes on) before the
    # message is dead-lettered as ``unexpected_error``.
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    retry_max_seconds: float = 30.0
    duration: Histogram | None = None
    _deliveries: dict[tuple[str, int], _Delivery] = field(default_factory=dict, init=False)
    _running: Callable[[], bool] = field(default_factory=lambda: _always, init=False, repr=False)

    async def __call__(self, body: bytes, record: ConsumerRecord[Any, Any]) -> None:
        if not self.retry_transient:
            await self._once(body, record)
            return
        if not self._running():
            raise NackMessage
        delivery = self._delivery(record)
        try:
            outcome = await self._process(body, record, delivery)
        except Exception as exc:
            await self._back_off(delivery, exc)
            raise NackMessage from exc
        self._finish(record, delivery, outcome)

    async def _once(self, body: bytes, record: ConsumerRecord[Any, Any]) -> None:
        """Without retries: the handler's failure is dead-lettered at once."""
        await self._process(body, record, _Delivery(record.offset))

    async def _process(
        self, body: bytes, record: ConsumerRecord[Any, Any], delivery: _Delivery
    ) -> str:
        if len(body) > MAX_MESSAGE_BYTES:
            too_large = MessageTooLarge(f"{len(body)} bytes; the limit is {MAX_MESSAGE_BYTES}")
            delivery.verdict = delivery.verdict or dead_letter_reason(too_large)
            return await self._give_up(body, record, delivery, too_large)
        try:
            event = self.model.model_validate_json(body)
        except ValidationError as exc:
            delivery.verdict = dead_letter_reason(exc)
            return await self._give_up(body, record, delivery, exc)
        with bind_correlation(event.correlation_id):
            if delivery.verdict is None:
                try:
                    return await self._attempt(event, delivery)
                except Exception as exc:
                    if self.retry_transient and self._retry(exc, delivery):
                        raise
                    delivery.verdict = dead_letter_reason(exc)
                    return await self._give_up(body, record, delivery, exc, event)
            return await self._give_up(body, record, delivery, None, event)

    def _retry(self, exc: Exception, delivery: _Delivery) -> bool:
        """Whether the failed try is tried again: always while a dependency
        is unavailable; never for a content error; for anything else, until
        ``max_attempts`` tries have failed (a fluke passes, poison does not)."""
        if is_transient(exc):
            return True
        if isinstance(exc, RagError | ValidationError):
            return False
        delivery.failures += 1
        return delivery.failures < self.max_attempts

    async def _attempt(self, event: E, delivery: _Delivery) -> str:
        if not delivery.claimed and self.on_delivery is not None:
            await self.on_delivery(event)
        delivery.claimed = True
        return await self.handle(event) or "done"

    async def _give_up(
        self,
        body: bytes,
        record: ConsumerRecord[Any, Any],
        delivery: _Delivery,
        exc: BaseException | None,
        event: E | None = None,
    ) -> str:
        """Dead-letter (once), then let the owner record the failure. Either
        step failing raises, and the next try resumes where this one stopped."""
        assert delivery.verdict is not None
        reason, detail = delivery.verdict
        if not delivery.dead_lettered:
            correlation_id = event.correlation_id if event is not None else None
            await self._dead_letter(body, record, reason, detail, exc, correlation_id)
            delivery.dead_lettered = True
        if event is not None and self.on_give_up is not None:
            await self.on_give_up(event, reason, detail)
        return "failed"

    async def _dead_letter(
        self,
        body: bytes,
        record: ConsumerRecord[Any, Any],
        reason: str,
        detail: str,
        exc: BaseException | None,
        correlation_id: str | None,
    ) -> None:
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
        await publish(self.broker, Topics.dead_letter(self.topic), letter, key=record.key)
        DEAD_LETTERS.labels(record.topic, reason).inc()
        log.error(
            "Message dead-lettered",
            reason=reason,
            detail=letter.detail,
            topic=record.topic,
            offset=record.offset,
            exc_info=exc is not None and not isinstance(exc, ValidationError | RagError),
        )

    def _delivery(self, record: ConsumerRecord[Any, Any]) -> _Delivery:
        # One message per partition is in flight (a retry blocks the
        # partition), so a partition's entry is either this offset's retry or stale.
        key = (record.topic, record.partition)
        current = self._deliveries.get(key)
        if current is None or current.offset != record.offset:
            current = self._deliveries[key] = _Delivery(record.offset)
        return current

    def _finish(self, record: ConsumerRecord[Any, Any], delivery: _Delivery, outcome: str) -> None:
        self._deliveries.pop((record.topic, record.partition), None)
        if self.duration is not None:
            self.duration.labels(outcome).observe(time.monotonic() - delivery.started)

    async def _back_off(self, delivery: _Delivery, exc: Exception) -> None:
        """Wait before the message comes round again; at once if stopping."""
        delay = backoff_delay(delivery.retries, self.backoff_seconds, self.retry_max_seconds)
        delivery.retries += 1
        RETRIES.labels(self.topic, type(exc).__name__).inc()
        log.warning(
            "Retrying message",
            retry=delivery.retries,
            delay_s=round(delay, 2),
            step="dead-letter" if delivery.verdict else "handle",
            error=f"{type(exc).__name__}: {exc}"[:500],
        )
        # In slices, so a stopping worker does not sit out a long wait.
        slices = max(1, math.ceil(delay / _STOP_POLL_SECONDS))
        for _ in range(slices):
            if not self._running():
                return
            await asyncio.sleep(delay / slices)

    def subscribe(
        self, *, ack_policy: AckPolicy, max_workers: int = 1, max_seconds_per_message: int = 300
    ) -> None:
        """Register on the broker (before it starts). With ``retry_transient``
        the policy should be ``NACK_ON_ERROR``: a retry is a nack."""

        async def on_message(msg: KafkaMessage) -> None:
            await self(msg.body, msg.raw_message)

        subscriber = self.broker.subscriber(
            self.topic,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            ack_policy=ack_policy,
            max_workers=max_workers,
            # Past this without a poll, Kafka takes the partition away and
            # another member gets the message again.
            max_poll_interval_ms=max_seconds_per_message * 1000,
        )
        subscriber(on_message)
        # False once the broker is stopping: a retry gives up its wait.
        self._running = lambda: bool(subscriber.running)
