"""Reading and writing topics directly, as an internal service would."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts.events import IngestRequest
from shared.intake import ingest_request
from shared.runtime.follow import known_partitions
from shared.storage.documents import Document


async def produce(bootstrap: str, topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    *,
    partitions: list[int] | None = None,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """JSON messages of ``topic`` from the beginning until ``done(messages)``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        chosen = partitions or await known_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in chosen]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while not done(messages):
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    messages += [json.loads(r.value) for r in records]
        return messages
    finally:
        await consumer.stop()


async def document_row(database_url: str, doc_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM documents WHERE id = $1", uuid.UUID(doc_id))
    finally:
        await conn.close()
    assert row is not None
    return row


async def lexical_chunk_count(database_url: str, doc_id: str) -> int:
    """How many chunks of the document the lexical index holds."""
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM chunks WHERE document_id = $1", uuid.UUID(doc_id)
        )
    finally:
        await conn.close()
    return count


def ingest_request_for(row: asyncpg.Record, prefix: str, **overrides: Any) -> IngestRequest:
    """An ingest request for an uploaded document, as an internal service
    would publish it; ``overrides`` forge any field."""
    request = ingest_request(Document.from_record(row), f"{prefix}-{uuid.uuid4().hex}")
    return IngestRequest.model_validate({**request.model_dump(), **overrides})


async def publish_ingest(app_env: dict[str, str], request: IngestRequest) -> None:
    await produce(
        app_env["KAFKA_BOOTSTRAP_SERVERS"],
        f"{app_env['KAFKA_TOPIC_PREFIX']}.ingest.requests",
        request.model_dump_json().encode(),
        key=str(request.document_id).encode(),
    )
