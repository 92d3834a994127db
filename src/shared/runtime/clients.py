"""The one place that builds a process's clients at start-up.

Each service opens ``Clients`` once, hands the pieces down, and closes them on
the way out. Nothing builds a client per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from faststream.kafka import KafkaBroker
from redis.asyncio import BlockingConnectionPool, Redis

from shared.adapters.embedding import Embedder, build_embedder
from shared.config import Settings
from shared.contracts.topics import Topics, ensure_topics
from shared.errors import RagError
from shared.runtime.kafka import create_broker, kafka_security
from shared.runtime.metrics import LagReader
from shared.storage.blobs import LocalBlobStore
from shared.storage.db import create_pool
from shared.storage.lexical import LexicalIndex
from shared.storage.vector_writes import VectorWriteLock
from shared.storage.vectorstore import VectorStore, connect_chroma


@dataclass
class Clients:
    settings: Settings
    topics: Topics
    pool: asyncpg.Pool
    redis: Redis
    broker: KafkaBroker
    embedder: Embedder | None
    vectors: VectorStore
    lexical: LexicalIndex
    blobs: LocalBlobStore
    # A worker's consumer group's lag (rag_kafka_consumer_lag); started.
    lag: LagReader | None = None

    def require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise RagError("this process was opened without an embedding model")
        return self.embedder


def connect_redis(settings: Settings) -> Redis:
    """A client whose pool waits for a free connection when all are busy:
    the default pool fails at once instead, and a burst (thousands of
    streams closing together, each giving back its slot) would lose calls."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.dependency_timeout,
        socket_timeout=settings.dependency_timeout,
        socket_connect_timeout=settings.dependency_timeout,
    )
    return Redis.from_pool(pool)  # closing the client closes its pool


@asynccontextmanager
async def open_clients(
    settings: Settings, service: str, *, embedder: bool = True, lag_group: str | None = None
) -> AsyncIterator[Clients]:
    """Connect to everything; the broker is built but not started, so the
    caller can register subscribers first. The gateway embeds nothing, so it
    loads no model (``embedder=False``). ``lag_group``: a worker's consumer
    group, whose lag its metrics report."""
    topics = Topics.from_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, topics)
    pool = await create_pool(settings)
    redis = connect_redis(settings)
    model = build_embedder(settings) if embedder else None
    clients = Clients(
        settings=settings,
        topics=topics,
        pool=pool,
        redis=redis,
        broker=create_broker(settings, client_id=service),
        embedder=model,
        vectors=VectorStore(connect_chroma(settings), model, VectorWriteLock(pool)),
        lexical=LexicalIndex(pool),
        blobs=LocalBlobStore(settings.blob_dir),
    )
    try:
        if lag_group is not None:
            security = kafka_security(settings)
            clients.lag = LagReader.of(settings.kafka_bootstrap_servers, lag_group, security)
            await clients.lag.start()
        yield clients
    finally:
        if clients.lag is not None:
            await clients.lag.stop()
        await clients.broker.stop()
        await redis.aclose()
        await pool.close()
