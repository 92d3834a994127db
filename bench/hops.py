"""What one chat's hops cost alone, measured in the same run as #1 so the
overhead can be read as a sum: an authenticated HTTP round trip through the
gateway (``GET /api/auth/verify``: middleware, token, user row), and one
Kafka hop (publish with ``acks=all``, as the project's producers do, until a
consumer holding the partition has the message), back to back and after the
producer sat idle for a while, as a gateway's does between one user's chats
(a sleeping broker and consumer take longer to wake than a busy one). A chat
makes two Kafka hops (request, then reply) and one HTTP request plus an SSE
stream."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.client import Account
from bench.results import summary_ms


async def http_round_trips(base_url: str, account: Account, n: int) -> dict[str, float]:
    timings = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(n):
            began = time.perf_counter()
            response = await http.get("/api/auth/verify", headers=account.headers)
            timings.append(time.perf_counter() - began)
            response.raise_for_status()
    return summary_ms(timings)


async def kafka_hops(bootstrap: str, n: int, idle: float = 0.0) -> dict[str, float]:
    """``idle``: seconds of quiet before each hop."""
    topic = f"bench-hop-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"first")  # metadata and connection ready
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        timings = []
        for i in range(n):
            if idle:
                await asyncio.sleep(idle)
            began = time.perf_counter()
            await producer.send(topic, str(i).encode(), partition=0)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=5000)
                if any(r.value == str(i).encode() for r in batch.get(tp, [])):
                    break
            timings.append(time.perf_counter() - began)
    finally:
        await consumer.stop()
        await producer.stop()
    return summary_ms(timings)
