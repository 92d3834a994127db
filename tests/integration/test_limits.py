"""Stream slots kept in a real Redis through the services' own client: a
burst of calls larger than the connection pool waits for connections
instead of losing slots."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.http.limits import Limits
from shared.config import Settings
from shared.errors import TooManyRequests
from shared.runtime.clients import connect_redis


async def test_a_burst_of_closing_streams_gives_every_slot_back(
    stack_env: dict[str, str],
) -> None:
    # Four connections for 400 streams: thousands of SSE clients leaving at
    # once look like this to a gateway's pool of 100.
    settings = Settings(
        redis_url=stack_env["REDIS_URL"],
        redis_max_connections=4,
        max_concurrent_streams=1000,
        kafka_topic_prefix=f"limits-{uuid.uuid4().hex[:8]}",
    )
    redis = connect_redis(settings)
    limits = Limits(redis, settings)
    user = uuid.uuid4()
    streams = [f"stream-{n}" for n in range(400)]
    try:
        await asyncio.gather(*(limits.open_stream(user, s) for s in streams))
        key = f"limit:{settings.kafka_topic_prefix}:streams:{user}"
        assert await redis.zcard(key) == 400
        await asyncio.gather(*(limits.close_stream(user, s) for s in streams))
        # A call refused for want of a connection would leave its slot held
        # (for STREAM_HOLD_SECONDS) and its user refused with 429 meanwhile.
        assert await redis.zcard(key) == 0
        assert redis.connection_pool.max_connections == 4
    finally:
        await redis.aclose()


async def test_a_stream_resumed_at_the_limit_takes_its_own_slot_again(
    stack_env: dict[str, str],
) -> None:
    settings = Settings(
        redis_url=stack_env["REDIS_URL"],
        max_concurrent_streams=2,
        kafka_topic_prefix=f"limits-{uuid.uuid4().hex[:8]}",
    )
    redis = connect_redis(settings)
    limits = Limits(redis, settings)
    user = uuid.uuid4()
    try:
        await limits.open_stream(user, "first")
        await limits.open_stream(user, "second")
        # Resumed while its old connection is not yet found gone: the same slot.
        await limits.open_stream(user, "second")
        with pytest.raises(TooManyRequests):
            await limits.open_stream(user, "third")
    finally:
        await redis.aclose()
