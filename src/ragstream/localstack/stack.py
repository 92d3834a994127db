"""The four servers ragstream needs, started together and stopped in reverse."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from ragstream.localstack.broker import Broker
from ragstream.localstack.chroma import ChromaService
from ragstream.localstack.errors import StackError
from ragstream.localstack.kafka import KafkaService
from ragstream.localstack.ports import free_ports
from ragstream.localstack.postgres import PostgresService
from ragstream.localstack.quorum import Quorum
from ragstream.localstack.redis import RedisService
from ragstream.localstack.s3 import S3Service
from ragstream.localstack.service import Service
from ragstream.localstack.tansu import TansuService

logger = logging.getLogger(__name__)

BrokerKind = Literal["kafka", "tansu"]
BlobStoreKind = Literal["local", "s3"]
# Voters of a KRaft quorum: one (development) or three (as production runs
# it); an even number tolerates no more failures than the odd one below.
KAFKA_BROKER_COUNTS = (1, 3)
# What each service's URL is exported as, in start order (stop is the reverse).
INFRA_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "CHROMA_URL")


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    broker: BrokerKind = "kafka"
    kafka_port: int = 9092
    kafka_controller_port: int | None = None  # None: kafka_port + 1
    kafka_brokers: int = 1
    # (client, controller) port of each Kafka node; empty: from kafka_port.
    kafka_node_ports: tuple[tuple[int, int], ...] = ()
    postgres_port: int = 5432
    redis_port: int = 6379
    chroma_port: int = 8001
    # "s3": an S3-protocol server (s3s-fs) holds the blobs (BLOB_STORE=s3).
    blob_store: BlobStoreKind = "local"
    s3_port: int = 8014
    # env var -> URL of a server that is already running: not started here.
    external: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.external) - set(INFRA_VARS)
        if unknown:
            raise ValueError(f"external keys must be among {INFRA_VARS}, not {sorted(unknown)}")
        if self.kafka_brokers not in KAFKA_BROKER_COUNTS:
            raise StackError(f"--kafka-brokers must be 1 or 3, not {self.kafka_brokers}")
        if self.kafka_brokers > 1 and self.broker != "kafka":
            raise StackError(f"{self.broker} runs as one node only: --kafka-brokers 1")
        if self.kafka_node_ports and len(self.kafka_node_ports) != self.kafka_brokers:
            raise ValueError("kafka_node_ports needs one (client, controller) pair per broker")

    @property
    def kafka_quorum(self) -> Quorum:
        if self.kafka_node_ports:
            return Quorum(self.kafka_node_ports)
        if self.kafka_brokers == 1:
            controller = self.kafka_controller_port or self.kafka_port + 1
            return Quorum(((self.kafka_port, controller),))
        return Quorum.consecutive(self.kafka_port, self.kafka_brokers)

    @classmethod
    def ephemeral(
        cls,
        data_dir: Path,
        broker: BrokerKind = "kafka",
        external: dict[str, str] | None = None,
        kafka_brokers: int = 1,
        blob_store: BlobStoreKind = "local",
    ) -> StackConfig:
        """Free ports picked now: for tests that must not clash with anything."""
        postgres, redis, chroma, s3, *kafka = free_ports(4 + 2 * kafka_brokers)
        nodes = tuple(zip(kafka[::2], kafka[1::2], strict=True))
        return cls(
            data_dir=data_dir,
            broker=broker,
            kafka_port=nodes[0][0],
            kafka_controller_port=nodes[0][1],
            kafka_brokers=kafka_brokers,
            kafka_node_ports=nodes,
            postgres_port=postgres,
            redis_port=redis,
            chroma_port=chroma,
            blob_store=blob_store,
            s3_port=s3,
            external=dict(external or {}),
        )


class LocalStack:
    """``with LocalStack(config) as stack: ... stack.env ...``

    ``kafka``, ``postgres``, ``redis``, ``chroma`` (and ``s3`` with
    ``blob_store="s3"``) are the service objects (None for those given as
    external, or not asked for), each with its own ``stop()`` and
    ``start()``. ``kafka`` is whichever broker was chosen; with several
    Kafka nodes, the first of ``kafka_nodes``.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        data = config.data_dir.resolve()
        self.kafka_nodes: list[Broker] = (
            [] if self._external("KAFKA_BOOTSTRAP_SERVERS") else _brokers(config, data)
        )
        self.postgres = (
            None if self._external("DATABASE_URL") else PostgresService(data, config.postgres_port)
        )
        self.redis = None if self._external("REDIS_URL") else RedisService(data, config.redis_port)
        self.chroma = (
            None if self._external("CHROMA_URL") else ChromaService(data, config.chroma_port)
        )
        self.s3 = S3Service(data, config.s3_port) if config.blob_store == "s3" else None

    def _external(self, env_var: str) -> bool:
        return bool(self.config.external.get(env_var))

    @property
    def kafka(self) -> Broker | None:
        return self.kafka_nodes[0] if self.kafka_nodes else None

    @property
    def services(self) -> list[Service]:
        """The services started here, in start order."""
        candidates = (self.postgres, self.redis, self.chroma, self.s3)
        return [*self.kafka_nodes, *(service for service in candidates if service is not None)]

    @property
    def env(self) -> dict[str, str]:
        urls = {service.env_var: service.url for service in self.services if service is not self.s3}
        if self.kafka_nodes:
            # Every node: a client still bootstraps while any one is down.
            urls["KAFKA_BOOTSTRAP_SERVERS"] = ",".join(node.url for node in self.kafka_nodes)
        return {name: self.config.external.get(name) or urls[name] for name in INFRA_VARS}

    @property
    def broker_settings(self) -> dict[str, str]:
        """What the services need set to work with the broker started here
        (none for one given in the environment)."""
        if not self.kafka_nodes:
            return {}
        if self.config.broker == "tansu":
            # tansu refuses the idempotent-producer handshake.
            return {"KAFKA_ENABLE_IDEMPOTENCE": "false"}
        return self.config.kafka_quorum.client_settings()

    @property
    def blob_settings(self) -> dict[str, str]:
        """What the services need to keep their blobs in the S3 server
        started here (none without one: ``BLOB_DIR`` then)."""
        return self.s3.settings if self.s3 is not None else {}

    def start(self) -> None:
        began = time.monotonic()
        services = self.services
        for service in services:
            service.check_ports()
        try:
            # Jar fetch, storage format and initdb take seconds each: overlap them.
            with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
                list(pool.map(lambda service: service.prepare(), services))
            # Launch from this thread: a child's parent-death signal fires
            # when the thread that started it ends.
            for service in services:
                service.launch()
            _wait_all(services)
        except BaseException:
            self.stop()
            raise
        logger.info("local stack ready in %.1f s", time.monotonic() - began)

    def stop(self) -> None:
        # Kafka's nodes all at once: a KRaft node that stops cleanly hands its
        # partitions over through the controller quorum, so stopped one after
        # another the last would wait for a quorum already gone, until killed.
        for node in self.kafka_nodes:
            node.request_stop()
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception:
                logger.exception("stopping %s failed", service.name)

    def crashed(self) -> list[Service]:
        """Services that exited without being asked to."""
        return [service for service in self.services if service.crashed]

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_all(services: list[Service]) -> None:
    # Round robin rather than one after another: a server that dies early is
    # reported at once, not after the slow ones are up.
    pending = list(services)
    while pending:
        pending = [service for service in pending if not service.poll_ready()]
        if pending:
            time.sleep(0.1)


def _brokers(config: StackConfig, data: Path) -> list[Broker]:
    if config.broker == "tansu":
        return [TansuService(data, config.kafka_port)]
    if config.broker == "kafka":
        return list(KafkaService.nodes(data, config.kafka_quorum))
    raise StackError(f"unknown broker {config.broker!r}: choose kafka or tansu")
