"""Building the FastStream Kafka broker and publishing events on it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import structlog
from faststream.kafka import KafkaBroker

from shared.config import Settings
from shared.events import DeadLetter, Event


def create_broker(settings: Settings, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        logger=structlog.stdlib.get_logger("faststream"),
        # FastStream's per-message lines stay at DEBUG; ours carry the
        # correlation id at INFO.
        log_level=logging.DEBUG,
        # On SIGTERM, handlers in progress get this long to finish (and their
        # messages to be committed) before the consumers leave the group.
        graceful_timeout=settings.shutdown_grace_seconds,
    )


async def publish(
    broker: KafkaBroker,
    topic: str,
    event: Event | DeadLetter,
    *,
    key: str | UUID | None = None,
    partition: int | None = None,
) -> None:
    """Send one event as JSON; returns once the broker acknowledged it."""
    await broker.publish(
        event.model_dump_json().encode(),
        topic,
        key=str(key).encode() if key is not None else None,
        partition=partition,
        correlation_id=event.correlation_id,
        headers={"content-type": "application/json"},
    )


async def publish_nowait(
    broker: KafkaBroker,
    topic: str,
    event: Event,
    *,
    key: str | UUID | None = None,
    partition: int | None = None,
) -> asyncio.Future[Any]:
    """Queue one event for sending and return without waiting for the
    broker's acknowledgement; the returned future settles with it. Events
    queued for one partition are sent in the order queued (the producer has
    one batch in flight per partition), so pipelining keeps their order."""
    future: asyncio.Future[Any] = await broker.publish(
        event.model_dump_json().encode(),
        topic,
        key=str(key).encode() if key is not None else None,
        partition=partition,
        correlation_id=event.correlation_id,
        headers={"content-type": "application/json"},
        no_confirm=True,
    )
    return future
