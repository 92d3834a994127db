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
from ragstream.localstack.redis import RedisService
from ragstream.localstack.service import Service
from ragstream.localstack.tansu import TansuService

logger = logging.getLogger(__name__)

BrokerKind = Literal["kafka", "tansu"]
# What each service's URL is exported as, in start order (stop is the reverse).
INFRA_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "CHROMA_URL")


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    broker: BrokerKind = "kafka"
    kafka_port: int = 9092
    kafka_controller_port: int | None = None  # None: kafka_port + 1
    postgres_port: int = 5432
    redis_port: int = 6379
    chroma_port: int = 8001
    # env var -> URL of a server that is already running: not started here.
    external: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.external) - set(INFRA_VARS)
        if unknown:
            raise ValueError(f"external keys must be among {INFRA_VARS}, not {sorted(unknown)}")

    @classmethod
    def ephemeral(
        cls,
        data_dir: Path,
        broker: BrokerKind = "kafka",
        external: dict[str, str] | None = None,
    ) -> StackConfig:
        """Free ports picked now: for tests that must not clash with anything."""
        kafka, controller, postgres, redis, chroma = free_ports(5)
        return cls(
            data_dir=data_dir,
            broker=broker,
            kafka_port=kafka,
            kafka_controller_port=controller,
            postgres_port=postgres,
            redis_port=redis,
            chroma_port=chroma,
            external=dict(external or {}),
        )


class LocalStack:
    """``with LocalStack(config) as stack: ... stack.env ...``

    ``kafka``, ``postgres``, ``redis`` and ``chroma`` are the service objects
    (None for those given as external), each with its own ``stop()`` and
    ``start()``. ``kafka`` is whichever broker was chosen.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        data = config.data_dir.resolve()
        self.kafka = None if self._external("KAFKA_BOOTSTRAP_SERVERS") else _broker(config, data)
        self.postgres = (
            None if self._external("DATABASE_URL") else PostgresService(data, config.postgres_port)
        )
        self.redis = None if self._external("REDIS_URL") else RedisService(data, config.redis_port)
        self.chroma = (
            None if self._external("CHROMA_URL") else ChromaService(data, config.chroma_port)
        )

    def _external(self, env_var: str) -> bool:
        return bool(self.config.external.get(env_var))

    @property
    def services(self) -> list[Service]:
        """The services started here, in start order."""
        candidates = (self.kafka, self.postgres, self.redis, self.chroma)
        return [service for service in candidates if service is not None]

    @property
    def env(self) -> dict[str, str]:
        urls = {service.env_var: service.url for service in self.services}
        return {name: self.config.external.get(name) or urls[name] for name in INFRA_VARS}

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


def _broker(config: StackConfig, data: Path) -> Broker:
    if config.broker == "tansu":
        return TansuService(data, config.kafka_port)
    if config.broker == "kafka":
        return KafkaService(data, config.kafka_port, config.kafka_controller_port)
    raise StackError(f"unknown broker {config.broker!r}: choose kafka or tansu")
