"""Building the FastStream Kafka broker and publishing events on it."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any
from uuid import UUID

import structlog
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.config import Settings
from shared.contracts.events import DeadLetter, Event

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the brokers against KAFKA_SSL_CAFILE (else the system's
    CAs); presents a client certificate when one is configured (mTLS)."""
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    context = ssl.create_default_context(cafile=cafile)
    if settings.kafka_ssl_certfile is not None:
        keyfile = settings.kafka_ssl_keyfile
        context.load_cert_chain(settings.kafka_ssl_certfile, keyfile)
    return context


def broker_security(settings: Settings) -> BaseSecurity | None:
    """KAFKA_SECURITY_PROTOCOL and friends as FastStream security; ``None``
    for PLAINTEXT. Incomplete SASL settings stop the process at start-up."""
    protocol = settings.kafka_security_protocol
    context = _ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol in ("PLAINTEXT", "SSL"):
        return BaseSecurity(ssl_context=context) if context else None
    mechanism, username = settings.kafka_sasl_mechanism, settings.kafka_sasl_username
    password = settings.kafka_sasl_password
    if mechanism is None or not username or password is None:
        raise RuntimeError(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM"
            " (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512), KAFKA_SASL_USERNAME and"
            " KAFKA_SASL_PASSWORD"
        )
    sasl = _SASL[mechanism]
    return sasl(username, password.get_secret_value(), ssl_context=context)


def kafka_security(settings: Settings) -> dict[str, Any]:
    """The same settings as keyword arguments of aiokafka's clients
    (AIOKafkaConsumer, AIOKafkaProducer, AIOKafkaAdminClient): every Kafka
    client of the project connects with these."""
    return parse_security(broker_security(settings))


def bootstrap_servers(settings: Settings) -> list[str]:
    """KAFKA_BOOTSTRAP_SERVERS as a list: FastStream takes a string for one
    address (``"a:9092,b:9092"`` would be one host named ``a:9092,b``)."""
    servers = (server.strip() for server in settings.kafka_bootstrap_servers.split(","))
    return [server for server in servers if server]


def create_broker(settings: Settings, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers(settings),
        client_id=client_id,
        security=broker_security(settings),
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=settings.kafka_linger_ms,
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
) -> RecordMetadata:
    """Send one event as JSON; returns once the broker acknowledged it,
    with where the event now sits."""
    sent: RecordMetadata = await broker.publish(
        event.model_dump_json().encode(),
        topic,
        key=str(key).encode() if key is not None else None,
        partition=partition,
        correlation_id=event.correlation_id,
        headers={"content-type": "application/json"},
    )
    return sent


async def republish(broker: KafkaBroker, topic: str, value: bytes, *, key: bytes | None) -> None:
    """Send a message's bytes again as they were (a dead letter's payload,
    replayed); returns once the broker acknowledged it."""
    await broker.publish(value, topic, key=key, headers={"content-type": "application/json"})


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
