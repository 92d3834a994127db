"""Looking into a Kafka cluster from a test, as an operator would with
``kafka-topics.sh --describe``: who leads each partition, which replicas are
in sync, how far each partition has been written. And a probe that writes
to and reads from a topic of its own through a fault, to time when writes
stop being acknowledged and when they resume."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

OFFSETS_TOPIC = "__consumer_offsets"


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int  # -1: none
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"


async def describe(bootstrap: str, prefixes: tuple[str, ...]) -> list[PartitionState]:
    """Every partition of the topics whose names start with one of
    ``prefixes``, from a fresh client (one that cached a dead broker's
    connection would ask it again)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    return [
        PartitionState(
            topic["topic"],
            part["partition"],
            part["leader"],
            tuple(part["replicas"]),
            tuple(part["isr"]),
        )
        for topic in topics
        if topic["topic"].startswith(prefixes)
        for part in topic["partitions"]
    ]


async def wait_until(
    bootstrap: str,
    prefixes: tuple[str, ...],
    healthy: Callable[[PartitionState], bool],
    *,
    timeout: float,
    interval: float = 0.2,
) -> float:
    """Seconds until every partition passes ``healthy``; metadata that
    cannot be had (a broker going away under the request) counts as not yet."""
    began = time.monotonic()
    last: list[PartitionState] = []
    while time.monotonic() - began < timeout:
        with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
            last = await describe(bootstrap, prefixes)
            if last and all(healthy(state) for state in last):
                return time.monotonic() - began
        await asyncio.sleep(interval)
    unhealthy = [state for state in last if not healthy(state)]
    raise AssertionError(f"not healthy after {timeout:g} s: {unhealthy[:10]}")


async def end_offsets(bootstrap: str, partitions: list[PartitionState]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        wanted = [TopicPartition(p.topic, p.partition) for p in partitions]
        found = await consumer.end_offsets(wanted)
    finally:
        await consumer.stop()
    return {f"{tp.topic}-{tp.partition}": offset for tp, offset in found.items()}


@dataclass
class Probe:
    """Writes a numbered record to every partition of ``topic`` each
    ``interval`` seconds (``acks=all``, idempotent, as the services' producers)
    and reads them all back, recording when each was acknowledged and read."""

    bootstrap: str
    topic: str
    partitions: int = 3
    interval: float = 0.1
    sent_at: dict[bytes, float] = field(default_factory=dict)
    acked_at: dict[bytes, float] = field(default_factory=dict)
    failed: dict[bytes, str] = field(default_factory=dict)
    read: Counter[bytes] = field(default_factory=Counter)
    read_at: dict[bytes, float] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _sends: set[asyncio.Task[None]] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @staticmethod
    def partition_of(value: bytes) -> int:
        return int(value.split(b"-")[0])

    async def create_topic(self, replication: int, min_insync: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            configs = {"min.insync.replicas": str(min_insync)}
            await admin.create_topics(
                [NewTopic(self.topic, self.partitions, replication, topic_configs=configs)]
            )
        finally:
            await admin.close()

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True
        )
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await producer.start()
        await consumer.start()
        wanted = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        self._tasks = [
            asyncio.create_task(self._write(producer)),
            asyncio.create_task(self._read(consumer)),
        ]

    async def stop(self, drain: float = 30) -> None:
        """Stop writing, wait for what was sent to be acknowledged or fail,
        then for every acknowledged record to be read (up to ``drain`` s)."""
        self._stop.set()
        await self._tasks[0]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain):
                while True:
                    if not set(self.acked_at) - set(self.read):
                        break
                    await asyncio.sleep(0.1)
        self._tasks[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._tasks[1]

    async def _write(self, producer: AIOKafkaProducer) -> None:
        try:
            number = 0
            while not self._stop.is_set():
                for partition in range(self.partitions):
                    value = f"{partition}-{number}".encode()
                    task = asyncio.create_task(self._send(producer, partition, value))
                    self._sends.add(task)
                    task.add_done_callback(self._sends.discard)
                number += 1
                await asyncio.sleep(self.interval)
            if self._sends:
                await asyncio.wait(set(self._sends), timeout=60)
        finally:
            await producer.stop()

    async def _send(self, producer: AIOKafkaProducer, partition: int, value: bytes) -> None:
        self.sent_at[value] = time.monotonic()
        try:
            await producer.send_and_wait(self.topic, value, partition=partition)
        except KafkaError as exc:
            self.failed[value] = type(exc).__name__
            return
        self.acked_at[value] = time.monotonic()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.monotonic()
                for records in batch.values():
                    for record in records:
                        self.read[record.value] += 1
                        self.read_at.setdefault(record.value, now)
        finally:
            await consumer.stop()

    def first_ack_after(self, moment: float, partitions: set[int]) -> float | None:
        """Seconds from ``moment`` to the first acknowledgement after it of a
        write to one of ``partitions``."""
        acks = [
            at
            for value, at in self.acked_at.items()
            if at > moment and self.partition_of(value) in partitions
        ]
        return min(acks) - moment if acks else None

    def first_read_after(self, moment: float, partitions: set[int]) -> float | None:
        """Seconds from ``moment`` to the first read of a record sent after it
        to one of ``partitions``."""
        reads = [
            self.read_at[value]
            for value, sent in self.sent_at.items()
            if sent > moment and value in self.read_at and self.partition_of(value) in partitions
        ]
        return min(reads) - moment if reads else None
