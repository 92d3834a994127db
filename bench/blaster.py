"""A query worker with an infinitely fast pipeline, for the relay benchmark:
it takes chat requests from Kafka like the real one (same consumer group,
same ``run_worker`` start-up) and answers each at once with
``BENCH_BLAST_TOKENS`` tokens at ``BENCH_BLAST_RATE`` tokens/s (ten times a
fast model's rate by default) through the real ``ReplyStream`` (so with the
deployment's coalescing), no retrieval, no model. What bounds the stream is
then the gateway's relay, not the answering.

``python -m bench.blaster`` with the deployment's environment.
"""

from __future__ import annotations

import asyncio
import os
import time

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage

from query.streaming import ReplyStream
from shared.config import Settings
from shared.contracts.events import ChatRequest
from shared.runtime.clients import Clients
from shared.runtime.worker import BackgroundJob, run_worker

WORD = "tok "


async def subscribe(clients: Clients) -> list[BackgroundJob]:
    tokens = int(os.environ.get("BENCH_BLAST_TOKENS", "400"))
    rate = float(os.environ.get("BENCH_BLAST_RATE", "2000"))
    settings = clients.settings
    subscriber = clients.broker.subscriber(
        clients.topics.chat_requests,
        group_id=f"{settings.kafka_topic_prefix}.query",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK_FIRST,
        max_workers=64,
    )

    @subscriber
    async def on_request(msg: KafkaMessage) -> None:
        request = ChatRequest.model_validate_json(msg.body)
        stream = ReplyStream(
            broker=clients.broker,
            default_topic=clients.topics.chat_replies,
            request=request,
            coalesce_words=settings.token_coalesce_words,
        )
        await stream.sources([])
        began = time.monotonic()
        for i in range(tokens):
            ahead = began + i / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            await stream.token(WORD)
        await stream.done([])

    return []


def main() -> None:
    asyncio.run(run_worker(Settings(), "query", subscribe))


if __name__ == "__main__":
    main()
