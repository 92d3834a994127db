"""Topic names, and creating them with the right partition counts.

Names derive from ``KAFKA_TOPIC_PREFIX`` so that several deployments (or test
runs) can share one cluster without seeing each other's traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from shared.config import Settings
from shared.runtime.kafka import kafka_security

log = structlog.get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36
_HOUR_MS = str(60 * 60 * 1000)


@dataclass(frozen=True)
class Topics:
    ingest_requests: str
    ingest_events: str
    chat_requests: str
    chat_replies: str
    chat_cancel: str
    feedback: str
    search_requests: str

    @classmethod
    def from_prefix(cls, prefix: str) -> Topics:
        return cls(
            ingest_requests=f"{prefix}.ingest.requests",
            ingest_events=f"{prefix}.ingest.events",
            chat_requests=f"{prefix}.chat.requests",
            chat_replies=f"{prefix}.chat.replies",
            chat_cancel=f"{prefix}.chat.cancel",
            feedback=f"{prefix}.feedback",
            search_requests=f"{prefix}.search.requests",
        )

    @staticmethod
    def dead_letter(topic: str) -> str:
        return f"{topic}.dlq"


def _wanted(settings: Settings, topics: Topics) -> list[NewTopic]:
    requests = settings.kafka_request_partitions
    rf = settings.kafka_replication_factor
    # On the topic itself, not left to the brokers' default: a managed
    # cluster's may be 1, which acknowledges a write only its leader has.
    durable = (
        {}
        if settings.kafka_min_insync_replicas is None
        else {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
    )
    # Replies and cancels are only useful for the length of a stream.
    short_lived = {**durable, "retention.ms": _HOUR_MS}

    def topic(name: str, partitions: int, configs: dict[str, str] | None = None) -> NewTopic:
        return NewTopic(name, partitions, rf, topic_configs=dict(configs or durable))

    return [
        topic(topics.ingest_requests, requests),
        topic(topics.ingest_events, requests),
        topic(topics.chat_requests, requests),
        topic(topics.chat_replies, settings.kafka_reply_partitions, short_lived),
        topic(topics.chat_cancel, 1, short_lived),
        topic(topics.feedback, requests),
        # A search is only useful while its caller waits, like a reply.
        topic(topics.search_requests, requests, short_lived),
        topic(Topics.dead_letter(topics.ingest_requests), 1),
        topic(Topics.dead_letter(topics.chat_requests), 1),
        topic(Topics.dead_letter(topics.search_requests), 1),
    ]


def _sasl_identity(settings: Settings) -> dict[str, str | None]:
    if not settings.kafka_security_protocol.startswith("SASL"):
        return {}
    return {
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_username": settings.kafka_sasl_username,
    }


async def ensure_topics(settings: Settings, topics: Topics) -> None:
    """Create whichever topics are missing; existing ones are left alone."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_security(settings)
    )
    try:
        await admin.start()
    except KafkaError:
        # The first connection a process makes: say what it tried (never the password).
        log.error(
            "Cannot connect to Kafka: check KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL"
            " and the KAFKA_SASL_* / KAFKA_SSL_* settings",
            bootstrap_servers=settings.kafka_bootstrap_servers,
            security_protocol=settings.kafka_security_protocol,
            **_sasl_identity(settings),
        )
        await admin.close()
        raise
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in _wanted(settings, topics) if t.name not in existing]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                log.error("Topic creation failed", topic=name, code=code, detail=rest)
            elif code == 0:
                log.info("Topic created", topic=name)
    finally:
        await admin.close()
