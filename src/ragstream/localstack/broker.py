"""What the two broker choices share: the readiness probe."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from ragstream.localstack.ports import HOST, accepts_connections
from ragstream.localstack.service import Service


async def _list_topics(bootstrap: str, security: Mapping[str, Any]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **security)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


def metadata_answers(bootstrap: str, security: Mapping[str, Any] | None = None) -> bool:
    """A real metadata round trip, not just an open port: a KRaft broker
    accepts connections a moment before it can serve requests. ``security``:
    aiokafka connection arguments (SASL, TLS) for a secured listener."""
    # A thread of its own: callers may already be inside an event loop.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _list_topics(bootstrap, security or {})).result(timeout=15)
    return True


class Broker(Service):
    """A Kafka-protocol broker on ``127.0.0.1:<port>``."""

    name = "kafka"
    env_var = "KAFKA_BOOTSTRAP_SERVERS"
    option = "--kafka-port"

    @property
    def url(self) -> str:
        return f"{HOST}:{self.port}"

    def is_ready(self) -> bool:
        return accepts_connections(self.port) and metadata_answers(self.url)
