"""Which reply partition this gateway replica owns.

Each replica leases one partition of the reply topic in Redis, so replicas
never read each other's replies. The lease is renewed while the replica lives
and expires on its own if the replica dies. A lease lost while the replica
lives (Redis restarted or flushed, renewals failing for a whole TTL) is taken
again: the same partition if it is still free, else another one, and the
reply router is told to move. A replica that found every partition leased
shares one, and keeps trying for one of its own. GATEWAY_REPLY_PARTITION pins
a partition instead (a StatefulSet ordinal, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

log = structlog.get_logger(__name__)

LeaseState = Literal["held", "shared", "lost", "pinned"]
_STATES: tuple[LeaseState, ...] = ("held", "shared", "lost", "pinned")

LEASE_STATE = Gauge(
    "rag_gateway_reply_lease_state",
    "1 for this replica's reply-partition lease state",
    ["state"],
    multiprocess_mode="livemax",
)
LEASE_MOVES = Counter(
    "rag_gateway_reply_lease_moves_total", "Times the reply router moved to another partition"
)
LEASE_LOSSES = Counter("rag_gateway_reply_lease_lost_total", "Reply-partition leases found lost")

TTL_SECONDS = 30
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)

OnMove = Callable[[int], Awaitable[None]]


class PartitionLease:
    def __init__(
        self, redis: Redis, topic: str, partitions: int, *, ttl: int = TTL_SECONDS
    ) -> None:
        self._redis = redis
        self._topic = topic
        self._partitions = partitions
        self._ttl = ttl
        self._owner = uuid.uuid4().hex
        self.partition: int | None = None
        self.state: LeaseState = "lost"
        self._renewal: asyncio.Task[None] | None = None
        self._on_move: OnMove | None = None

    def _key_for(self, partition: int) -> str:
        return f"rag:reply-partition:{self._topic}:{partition}"

    def pin(self, partition: int) -> int:
        """No lease: the partition is fixed by configuration."""
        self.partition = partition
        self._set_state("pinned")
        return partition

    async def acquire(self) -> int:
        """Lease a free partition, or share one if none is free."""
        partition = await self._take_free(prefer=None)
        if partition is None:
            # More replicas than partitions: share one. Replies are still
            # filtered by stream id, so this costs reading, never correctness.
            partition = random.randrange(self._partitions)  # noqa: S311
            log.warning("All reply partitions are leased; sharing one", partition=partition)
            self._set_state("shared")
        self.partition = partition
        return partition

    def keep(self, on_move: OnMove) -> None:
        """Renew from now on; ``on_move`` is awaited when the partition changes."""
        self._on_move = on_move
        self._renewal = asyncio.create_task(self._renew_forever())

    async def _take_free(self, prefer: int | None) -> int | None:
        order = list(range(self._partitions))
        if prefer is not None:
            order.remove(prefer)
            order.insert(0, prefer)
        for partition in order:
            if await self._redis.set(self._key_for(partition), self._owner, nx=True, ex=self._ttl):
                self._set_state("held")
                return partition
        return None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self.renew()
            except Exception as exc:
                # Redis is away; the lease may expire meanwhile, which the
                # first renewal after it returns finds out.
                log.warning("Reply partition lease renewal failed", error=str(exc))

    async def renew(self) -> None:
        """Keep the lease, or get one back (and move) if it was lost."""
        assert self.partition is not None
        if self.state == "held":
            key = self._key_for(self.partition)
            if await self._redis.eval(_RENEW, 1, key, self._owner, self._ttl):
                return
            LEASE_LOSSES.inc()
            log.warning("Reply partition lease lost", partition=self.partition)
            self._set_state("lost")
        partition = await self._take_free(prefer=self.partition)
        if partition is None:
            return  # still shared (or lost): try again next round
        if partition == self.partition:
            log.info("Reply partition lease re-acquired", partition=partition)
            return
        log.warning("Reply router moving", partition=partition, previous=self.partition)
        self.partition = partition
        LEASE_MOVES.inc()
        if self._on_move is not None:
            await self._on_move(partition)

    def _set_state(self, state: LeaseState) -> None:
        self.state = state
        for name in _STATES:
            LEASE_STATE.labels(name).set(1 if name == state else 0)

    async def release(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewal
        if self.state == "held" and self.partition is not None:
            with contextlib.suppress(Exception):
                await self._redis.eval(_RELEASE, 1, self._key_for(self.partition), self._owner)
