"""The query worker's subscriptions."""

from __future__ import annotations

import structlog
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from query.answerer import ExtractiveGenerator
from query.cancellation import Cancellations
from query.chat import ChatHandler
from query.retrieval import Retriever
from shared.clients import Clients
from shared.config import Settings
from shared.consumer import Consumer
from shared.events import ChatCancel, ChatRequest
from shared.worker import run_worker

log = structlog.get_logger(__name__)


def subscribe_cancels(clients: Clients, cancellations: Cancellations) -> None:
    # No group: every worker must hear every cancel, from now on.
    subscriber = clients.broker.subscriber(
        clients.topics.chat_cancel, auto_offset_reset="latest", ack_policy=AckPolicy.ACK_FIRST
    )

    @subscriber
    async def on_cancel(msg: KafkaMessage) -> None:
        try:
            cancel = ChatCancel.model_validate_json(msg.body)
        except ValidationError:
            log.warning("Ignoring malformed cancel", message_id=msg.message_id)
            return
        cancellations.cancel(cancel.correlation_id)


async def subscribe(clients: Clients) -> None:
    cancellations = Cancellations()
    handler = ChatHandler(
        clients=clients,
        retriever=Retriever(clients.embedder, clients.vectors),
        generator=ExtractiveGenerator(),
        cancellations=cancellations,
    )
    consumer = Consumer(
        broker=clients.broker,
        topic=clients.topics.chat_requests,
        group_id=f"{clients.settings.kafka_topic_prefix}.query",
        model=ChatRequest,
        handle=handler.handle,
    )
    # Chat is at-most-once by design: a request carries a deadline and a
    # waiting client, so a replay after a crash would answer nobody.
    consumer.subscribe(
        ack_policy=AckPolicy.ACK_FIRST, max_workers=clients.settings.query_concurrency
    )
    subscribe_cancels(clients, cancellations)


async def run(settings: Settings) -> None:
    await run_worker(settings, "query", subscribe)
