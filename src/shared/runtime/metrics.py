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
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge, multiprocess

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


class Sampler:
    """Refreshes the gauges every ``interval`` seconds until stopped."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        service: str,
        *,
        bootstrap_servers: str | None = None,
        group: str | None = None,
        interval: float = SAMPLE_SECONDS,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        """``security``: shared.runtime.kafka.kafka_security(settings), for the lag."""
        self._pool = pool
        self._service = service
        self._group = group
        self._interval = interval
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        if group is not None and bootstrap_servers is not None:
            kwargs = {"bootstrap_servers": bootstrap_servers, **(security or {})}
            self._admin = AIOKafkaAdminClient(**kwargs)
            self._consumer = AIOKafkaConsumer(group_id=None, **kwargs)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._admin is not None and self._consumer is not None:
            await self._admin.start()
            await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def sample(self) -> None:
        sample_pool(self._pool, self._service)
        if self._admin is None or self._consumer is None or self._group is None:
            return
        for topic, lag in (await group_lag(self._admin, self._consumer, self._group)).items():
            CONSUMER_LAG.labels(self._group, topic).set(lag)

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception as exc:
                # A metric must never take a service down; the gap shows.
                log.warning("Metrics sampling failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._interval)
