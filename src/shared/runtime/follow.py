"""Following partitions from their end, without a consumer group.

Gateways read their reply partition and every partition of the document
events this way, and so does ``RagKafkaClient``: what was published before
they started is not theirs, and each reader must see every record (a shared
group would hand each record to one of them only). The end offsets are
resolved at start, so nothing published after ``start`` returns is skipped
by a lazy offset reset. A failed fetch or handler is logged and reading
resumes: one bad record must not silence every waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = structlog.get_logger(__name__)

Handler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]
_METADATA_TRIES = 50


def group_less_consumer(
    bootstrap_servers: str, security: Mapping[str, Any] | None = None, **options: Any
) -> AIOKafkaConsumer:
    """``security``: shared.runtime.kafka.kafka_security(settings)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        **{**(security or {}), **options},
    )


async def known_partitions(
    consumer: AIOKafkaConsumer, topic: str, *, tries: int = _METADATA_TRIES
) -> list[int]:
    """The topic's partitions, asking the brokers again while they are not
    known (a topic created a moment ago may not be in their metadata yet)."""
    for attempt in range(tries + 1):
        # aiokafka has no public call for the metadata of a topic a consumer
        # does not read; this is the one place that reaches for it.
        cluster = await consumer._client.fetch_all_metadata()
        if found := cluster.partitions_for_topic(topic):
            return sorted(found)
        if attempt == tries:
            break
        await asyncio.sleep(0.1)
    raise LookupError(f"topic {topic} does not exist: are the services started?")


class PartitionFollower:
    """One group-less consumer over some partitions of ``topic``, from
    their end, handing each record to ``handle`` in order."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        handle: Handler,
        *,
        failure: str = "Kafka follower failed; resuming",
    ) -> None:
        """``failure``: the log line of a failed fetch or handler."""
        self.topic = topic
        self._consumer = consumer
        self._handle = handle
        self._failure = failure
        self._task: asyncio.Task[None] | None = None

    async def start(self, partitions: list[int] | None = None) -> None:
        """Follow ``partitions`` (``None``: all of the topic's) from their end."""
        await self._consumer.start()
        chosen = partitions if partitions is not None else await self.partitions()
        tps = [TopicPartition(self.topic, p) for p in chosen]
        self._consumer.assign(tps)
        await self._at_end(tps)
        self._task = asyncio.create_task(self._run())

    async def partitions(self, topic: str | None = None) -> list[int]:
        """The partitions of ``topic`` (by default, the one followed)."""
        return await known_partitions(self._consumer, topic or self.topic)

    async def add(self, partition: int) -> None:
        """Follow ``partition`` too, from its end; those followed before stay
        where they are."""
        tps = self._consumer.assignment()
        positions = {tp: await self._consumer.position(tp) for tp in tps}
        new = TopicPartition(self.topic, partition)
        self._consumer.assign([*tps, new])
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)
        await self._at_end([new])

    async def position(self, partition: int) -> int:
        """The next offset to be read from ``partition`` (one followed)."""
        offset: int = await self._consumer.position(TopicPartition(self.topic, partition))
        return offset

    async def _at_end(self, tps: list[TopicPartition]) -> None:
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolved now, not lazily at the first fetch
            await self._consumer.position(tp)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                async for record in self._consumer:
                    await self._handle(record)
            except Exception:
                log.exception(self._failure, topic=self.topic)
                await asyncio.sleep(1)
