"""Which reply partition this gateway replica owns.

Each replica leases one partition of the reply topic in Redis, so replicas
never read each other's replies. The lease is renewed while the replica lives
and expires on its own if the replica dies. GATEWAY_REPLY_PARTITION pins a
partition instead (a StatefulSet ordinal, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid

import structlog
from redis.asyncio import Redis

log = structlog.get_logger(__name__)

_TTL_SECONDS = 30
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)


class PartitionLease:
    def __init__(self, redis: Redis, topic: str, partitions: int) -> None:
        self._redis = redis
        self._topic = topic
        self._partitions = partitions
        self._owner = uuid.uuid4().hex
        self._key: str | None = None
        self._renewal: asyncio.Task[None] | None = None

    def _key_for(self, partition: int) -> str:
        return f"rag:reply-partition:{self._topic}:{partition}"

    async def acquire(self) -> int:
        for partition in range(self._partitions):
            key = self._key_for(partition)
            if await self._redis.set(key, self._owner, nx=True, ex=_TTL_SECONDS):
                self._key = key
                self._renewal = asyncio.create_task(self._renew_forever())
                return partition
        # More replicas than partitions: share one. Replies are still filtered
        # by correlation id, so this costs reading, never correctness.
        partition = random.randrange(self._partitions)  # noqa: S311
        log.warning("All reply partitions are leased; sharing one", partition=partition)
        return partition

    async def _renew_forever(self) -> None:
        assert self._key is not None
        while True:
            await asyncio.sleep(_TTL_SECONDS / 3)
            try:
                kept = await self._redis.eval(_RENEW, 1, self._key, self._owner, _TTL_SECONDS)
            except Exception as exc:
                log.warning("Reply partition lease renewal failed", error=str(exc))
                continue
            if not kept:
                log.warning("Reply partition lease lost", key=self._key)

    async def release(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
        if self._key is not None:
            with contextlib.suppress(Exception):
                await self._redis.eval(_RELEASE, 1, self._key, self._owner)
