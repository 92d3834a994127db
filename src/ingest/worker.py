"""The ingest worker's subscriptions."""

from __future__ import annotations

from faststream import AckPolicy

from ingest.backlog import sample_forever
from ingest.metrics import INGEST_DURATION
from ingest.parser_pool import ParserPool
from ingest.pipeline import Indexer
from ingest.reconciler import reconcile_forever
from ingest.release import release_forever
from ingest.sweeper import sweep_forever
from shared.config import Settings
from shared.contracts.events import IngestRequest
from shared.runtime.clients import Clients
from shared.runtime.consumer import Consumer
from shared.runtime.worker import BackgroundJob, run_worker


async def subscribe(clients: Clients) -> list[BackgroundJob]:
    settings = clients.settings
    parser = ParserPool(settings.ingest_parse_memory_mb, settings.ingest_parse_seconds)
    indexer = Indexer(clients, parser)
    consumer = Consumer(
        broker=clients.broker,
        topic=clients.topics.ingest_requests,
        group_id=f"{clients.settings.kafka_topic_prefix}.ingest",
        model=IngestRequest,
        handle=indexer.handle,
        on_delivery=indexer.claim,
        on_give_up=indexer.fail,
        retry_transient=True,
        max_attempts=clients.settings.ingest_max_attempts,
        retry_max_seconds=clients.settings.ingest_retry_max_seconds,
        duration=INGEST_DURATION,
    )
    # Offsets are committed only after an outcome (indexed, failed and
    # dead-lettered, or dropped): a transient failure is a nack, and a worker
    # that dies mid-document leaves it to be redelivered.
    # A long document (tens of thousands of chunks) takes minutes: more than
    # Kafka's default five before the group would re-assign it.
    consumer.subscribe(
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_seconds_per_message=clients.settings.ingest_max_document_seconds,
    )
    return [
        release_forever(clients),
        sweep_forever(clients),
        reconcile_forever(clients),
        sample_forever(clients),
    ]


async def run(settings: Settings) -> None:
    await run_worker(settings, "ingest", subscribe)
