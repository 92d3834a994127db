"""Reply partitions leased in a real Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from gateway.lease import PartitionLease


async def test_replicas_get_distinct_partitions_until_none_are_left(
    stack_env: dict[str, str],
) -> None:
    redis = Redis.from_url(stack_env["REDIS_URL"])
    topic = f"lease-{uuid.uuid4().hex}"
    leases = [PartitionLease(redis, topic, partitions=2) for _ in range(3)]
    try:
        first, second = await leases[0].acquire(), await leases[1].acquire()
        assert {first, second} == {0, 1}
        assert await leases[2].acquire() in {0, 1}  # shares, still filtered by id

        await leases[0].release()
        successor = PartitionLease(redis, topic, partitions=2)
        assert await successor.acquire() == first
        await successor.release()
    finally:
        for lease in leases:
            await lease.release()
        await redis.aclose()
