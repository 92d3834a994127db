"""The sampled metrics against real Kafka and PostgreSQL: a consumer group's
lag and the database pool in use."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from shared.runtime.metrics import LagReader, Sampler, group_lag


async def test_group_lag_is_what_the_group_has_not_committed(
    stack_env: dict[str, str],
) -> None:
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"lag-group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for n in range(7):
        await producer.send_and_wait(topic, b"x", partition=n % 2)  # 4 on p0, 3 on p1
    await producer.stop()
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    member.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    await member.start()
    await member.commit({TopicPartition(topic, 0): OffsetAndMetadata(3, "")})
    await member.commit({TopicPartition(topic, 1): OffsetAndMetadata(1, "")})
    await member.stop()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        assert await group_lag(admin, reader, group) == {topic: (4 - 3) + (3 - 1)}
        assert await group_lag(admin, reader, f"never-{group}") == {}
    finally:
        await reader.stop()
        await admin.close()


async def test_the_sampler_exports_pool_use_and_lag(stack_env: dict[str, str]) -> None:
    pool = await asyncpg.create_pool(stack_env["DATABASE_URL"], min_size=1, max_size=3)
    service = f"test-{uuid.uuid4().hex[:6]}"
    lag = LagReader.of(stack_env["KAFKA_BOOTSTRAP_SERVERS"], f"none-{service}")
    await lag.start()
    sampler = Sampler(pool, service, lag=lag)
    await sampler.start()
    try:
        async with pool.acquire():
            await sampler.sample()
            in_use = REGISTRY.get_sample_value("rag_db_pool_in_use", {"service": service})
        await sampler.sample()
        after = REGISTRY.get_sample_value("rag_db_pool_in_use", {"service": service})
        assert (in_use, after) == (1.0, 0.0)
        assert REGISTRY.get_sample_value("rag_db_pool_max", {"service": service}) == 3.0
    finally:
        await sampler.stop()
        await lag.stop()
        await pool.close()


async def test_the_group_s_members_are_counted(stack_env: dict[str, str]) -> None:
    """Releasers size their window by the ingest workers in the group."""
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    topic, group = f"members-{uuid.uuid4().hex[:8]}", f"members-group-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1)])
    await admin.close()
    reader = LagReader.of(bootstrap, group)
    await reader.start()
    members = [
        AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group) for _ in range(2)
    ]
    try:
        assert await reader.members() == 0
        for member in members:
            await member.start()
        counted = 0
        for _ in range(40):  # until both have joined (a rebalance takes seconds)
            await asyncio.gather(*(m.getmany(timeout_ms=500) for m in members))
            counted = await reader.members()
            if counted == 2:
                break
        assert counted == 2
    finally:
        for member in members:
            await member.stop()
        await reader.stop()
