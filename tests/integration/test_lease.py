"""Reply partitions leased in a real Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from gateway.streams.lease import OnMove, PartitionLease


def _recorder(moves: list[int]) -> OnMove:
    async def on_move(partition: int) -> None:
        moves.append(partition)

    return on_move


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


async def test_a_lease_lost_to_a_flush_is_taken_again_without_moving(
    stack_env: dict[str, str],
) -> None:
    redis = Redis.from_url(stack_env["REDIS_URL"])
    topic = f"lease-{uuid.uuid4().hex}"
    lease = PartitionLease(redis, topic, partitions=2)
    moves: list[int] = []
    on_move = _recorder(moves)

    try:
        partition = await lease.acquire()
        lease.keep(on_move)
        await redis.delete(f"rag:reply-partition:{topic}:{partition}")  # as a FLUSHALL would

        await lease.renew()

        assert (lease.state, lease.partition, moves) == ("held", partition, [])
        assert await redis.get(f"rag:reply-partition:{topic}:{partition}") is not None
    finally:
        await lease.release()
        await redis.aclose()


async def test_a_lease_taken_by_another_replica_moves_the_router(
    stack_env: dict[str, str],
) -> None:
    redis = Redis.from_url(stack_env["REDIS_URL"])
    topic = f"lease-{uuid.uuid4().hex}"
    lease = PartitionLease(redis, topic, partitions=2)
    moves: list[int] = []
    on_move = _recorder(moves)

    try:
        first = await lease.acquire()
        lease.keep(on_move)
        # Our lease expired while Redis was away and another replica took it.
        await redis.set(f"rag:reply-partition:{topic}:{first}", "someone-else")

        await lease.renew()

        assert lease.state == "held"
        assert lease.partition == 1 - first
        assert moves == [1 - first]
    finally:
        await lease.release()
        await redis.aclose()


async def test_a_replica_sharing_a_partition_gets_its_own_when_one_frees_up(
    stack_env: dict[str, str],
) -> None:
    redis = Redis.from_url(stack_env["REDIS_URL"])
    topic = f"lease-{uuid.uuid4().hex}"
    holder = PartitionLease(redis, topic, partitions=1)
    sharer = PartitionLease(redis, topic, partitions=1)
    moves: list[int] = []
    on_move = _recorder(moves)

    try:
        await holder.acquire()
        assert await sharer.acquire() == 0
        sharer.keep(on_move)
        await sharer.renew()
        assert sharer.state == "shared"

        await holder.release()
        await sharer.renew()

        # Same partition number, now its own: nothing to move.
        assert (sharer.state, sharer.partition, moves) == ("held", 0, [])
    finally:
        await sharer.release()
        await holder.release()
        await redis.aclose()
