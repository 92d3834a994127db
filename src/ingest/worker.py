"""The ingest worker's subscriptions."""

from __future__ import annotations

from faststream import AckPolicy

from ingest.pipeline import Indexer
from shared.clients import Clients
from shared.config import Settings
from shared.consumer import Consumer
from shared.events import IngestRequest
from shared.worker import run_worker


async def subscribe(clients: Clients) -> None:
    indexer = Indexer(clients)
    consumer = Consumer(
        broker=clients.broker,
        topic=clients.topics.ingest_requests,
        group_id=f"{clients.settings.kafka_topic_prefix}.ingest",
        model=IngestRequest,
        handle=indexer.handle,
        on_give_up=indexer.fail,
        max_attempts=clients.settings.ingest_max_attempts,
    )
    # Offsets are committed only after a document is indexed (or failed):
    # a worker that dies mid-document leaves it to be redelivered.
    consumer.subscribe(ack_policy=AckPolicy.ACK)


async def run(settings: Settings) -> None:
    await run_worker(settings, "ingest", subscribe)
