"""Metrics every service exports: the database pool in use and, for a
worker, its consumer group's lag.

They are sampled in the background rather than at scrape time, so a scrape
never waits on Kafka and works the same in prometheus-client's
multiprocess mode (where callbacks are not collected).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge, multiprocess

from shared.runtime.follow import known_partitions

log = structlog.get_logger(__name__)

DB_POOL_IN_USE = Gauge(
    "rag_db_pool_in_use",
    "PostgreSQL connections checked out of the pool",
    ["service"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "rag_db_pool_max",
    "PostgreSQL connections the pool may open",
    ["service"],
    multiprocess_mode="livesum",
)
CONSUMER_LAG = Gauge(
    "rag_kafka_consumer_lag",
    "Messages on the topic not yet committed by the consumer group",
    ["group", "topic"],
    multiprocess_mode="livemax",
)

SAMPLE_SECONDS = 15.0


def forget_process_metrics() -> None:
    """In multiprocess mode, drop this process's live gauges on the way out,
    so a restarted worker process is not counted twice."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def sample_pool(pool: asyncpg.Pool, service: str) -> None:
    DB_POOL_IN_USE.labels(service).set(pool.get_size() - pool.get_idle_size())
    DB_POOL_MAX.labels(service).set(pool.get_max_size())


async def group_lag(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str
) -> dict[str, int]:
    """Per topic: end offsets minus the group's committed offsets."""
    committed = await admin.list_consumer_group_offsets(group)
    if not committed:
        return {}
    ends: dict[TopicPartition, int] = await consumer.end_offsets(list(committed))
    lag: dict[str, int] = defaultdict(int)
    for tp, meta in committed.items():
        lag[tp.topic] += max(0, ends[tp] - max(meta.offset, 0))
    return dict(lag)


@dataclass
class LagReader:
    """What a consumer group has not committed yet, per topic: an admin
    client reads its offsets, a group-less consumer the topics' ends."""

    admin: AIOKafkaAdminClient
    consumer: AIOKafkaConsumer
    group: str

    @classmethod
    def of(
        cls, bootstrap_servers: str, group: str, security: Mapping[str, Any] | None = None
    ) -> LagReader:
        """``security``: shared.runtime.kafka.kafka_security(settings)."""
        kwargs = {"bootstrap_servers": bootstrap_servers, **(security or {})}
        return cls(AIOKafkaAdminClient(**kwargs), AIOKafkaConsumer(group_id=None, **kwargs), group)

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def lag(self) -> dict[str, int]:
        return await group_lag(self.admin, self.consumer, self.group)

    async def members(self) -> int:
        """How many consumers the group has now."""
        responses = await self.admin.describe_consumer_groups([self.group])
        # DescribeGroupsResponse: (error, group id, state, protocol type,
        # protocol, members, ...) per group.
        return sum(len(g[5]) for r in responses for g in r.groups if g[1] == self.group)

    async def positions(self, topic: str) -> Positions:
        """Where the group and the log of each partition of ``topic`` stand."""
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        ours = {tp: meta for tp, meta in offsets.items() if tp.topic == topic}
        committed = {tp.partition: m.offset for tp, m in ours.items() if m.offset >= 0}
        tps = [TopicPartition(topic, p) for p in await known_partitions(self.consumer, topic)]
        starts = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        return Positions(
            committed=committed,
            start={tp.partition: offset for tp, offset in starts.items()},
            end={tp.partition: offset for tp, offset in ends.items()},
        )


@dataclass(frozen=True)
class Positions:
    """Per partition: the group's committed offset (the next record it will
    read; absent if it never committed), and the log's first and next offsets."""

    committed: dict[int, int]
    start: dict[int, int]
    end: dict[int, int]


class Sampler:
    """Refreshes the gauges every ``interval`` seconds until stopped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        service: str,
        *,
        lag: LagReader | None = None,
        interval: float = SAMPLE_SECONDS,
    ) -> None:
        """``lag``: a worker's group, started and stopped by its owner."""
        self._pool = pool
        self._service = service
        self._lag = lag
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sample(self) -> None:
        sample_pool(self._pool, self._service)
        if self._lag is None:
            return
        for topic, lag in (await self._lag.lag()).items():
            CONSUMER_LAG.labels(self._lag.group, topic).set(lag)

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:
                # A metric must never take a service down; the gap shows.
                log.warning("Metrics sampling failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._interval)
