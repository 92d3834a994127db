"""The one place that builds a process's clients at start-up.

Each service opens ``Clients`` once, hands the pieces down, and closes them on
the way out. Nothing builds a client per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from faststream.kafka import KafkaBroker
from pydantic import SecretStr
from redis.asyncio import BlockingConnectionPool, Redis

from shared.adapters.embedding import Embedder, build_embedder
from shared.config import Settings
from shared.contracts.topics import Topics, ensure_topics
from shared.errors import RagError
from shared.runtime.kafka import create_broker, kafka_security
from shared.runtime.metrics import LagReader
from shared.storage.blobs import BlobStore, LocalBlobStore
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
    blobs: BlobStore
    # A worker's consumer group's lag (rag_kafka_consumer_lag); started.
    lag: LagReader | None = None
    # The gateway's client for the OpenID provider (OIDC_ISSUER_URL set).
    oidc_http: httpx.AsyncClient | None = None

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


def build_blob_store(settings: Settings) -> BlobStore:
    """``BLOB_STORE``'s store; for S3, its one boto3 client for the process."""
    if settings.blob_store == "local":
        return LocalBlobStore(settings.blob_dir)
    from shared.storage.s3_blobs import S3BlobStore, S3Location, encryption_args, normalise_prefix

    assert settings.blob_s3_bucket is not None  # the settings' validator saw to it
    location = S3Location(
        bucket=settings.blob_s3_bucket,
        prefix=normalise_prefix(settings.blob_s3_prefix),
        part_bytes=settings.blob_s3_part_mb * 1024 * 1024,
        encryption=encryption_args(settings.blob_s3_sse, settings.blob_s3_kms_key_id),
        concurrency=settings.blob_s3_max_connections,
    )
    return S3BlobStore(s3_client(settings), location)


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client from the ``BLOB_S3_*`` settings; credentials not
    given there come from boto3's usual chain (environment, web identity,
    instance profile)."""
    import boto3
    from botocore.config import Config

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    config = Config(
        max_pool_connections=settings.blob_s3_max_connections,
        connect_timeout=max(settings.dependency_timeout, 5.0),
        read_timeout=60,
        retries={"max_attempts": 5, "mode": "standard"},
        # A custom endpoint (MinIO, s3s-fs, Ceph) seldom has per-bucket host names.
        s3={"addressing_style": "path" if settings.blob_s3_endpoint_url else "auto"},
        # Checksums only where S3 requires them: other S3 servers refuse some.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.blob_s3_endpoint_url,
        region_name=settings.blob_s3_region or settings.aws_region,
        aws_access_key_id=secret(settings.blob_s3_access_key_id),
        aws_secret_access_key=secret(settings.blob_s3_secret_access_key),
        aws_session_token=secret(settings.blob_s3_session_token),
        config=config,
    )


def oidc_client(settings: Settings) -> httpx.AsyncClient:
    """One client for the provider's discovery, keys and token endpoints:
    bounded in time, never following a redirect elsewhere."""
    return httpx.AsyncClient(
        timeout=settings.oidc_timeout_seconds,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=10),
        headers={"User-Agent": "ragstream-gateway"},
    )


@asynccontextmanager
async def open_clients(
    settings: Settings,
    service: str,
    *,
    embedder: bool = True,
    lag_group: str | None = None,
    oidc: bool = False,
) -> AsyncIterator[Clients]:
    """Connect to everything; the broker is built but not started, so the
    caller can register subscribers first. The gateway embeds nothing, so it
    loads no model (``embedder=False``). ``lag_group``: a worker's consumer
    group, whose lag its metrics report. ``oidc``: an HTTP client for the
    OpenID provider, when one is configured (the gateway)."""
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
        blobs=build_blob_store(settings),
    )
    if oidc and settings.oidc_issuer_url:
        clients.oidc_http = oidc_client(settings)
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
        if clients.oidc_http is not None:
            await clients.oidc_http.aclose()
        await redis.aclose()
        await pool.close()
