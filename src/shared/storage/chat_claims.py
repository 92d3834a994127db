"""The claim on a chat stream, in Redis: kept by the query worker that
answers it, read by the gateway that waits for it.

Two keys a stream. The claim holds the attempt answering it (``done:`` and
the attempt once answered) until the request's deadline: a request delivered
again is then not answered twice. The lease holds the attempt too, for
``CHAT_CLAIM_LEASE_SECONDS`` after the worker last renewed it. A claim that
is not done and whose lease ran out was held by a worker that died: the
request may be answered again, by whichever worker claims it next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from redis.asyncio import Redis

ClaimState = Literal["unclaimed", "answering", "answered", "orphaned"]
DONE = "done:"

# KEYS: claim, lease. ARGV: attempt, claim expiry (ms since the epoch), lease (ms).
_CLAIM = """
if redis.call('exists', KEYS[2]) == 1 then return 0 end
local holder = redis.call('get', KEYS[1])
if holder and string.sub(holder, 1, 5) == 'done:' then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""
# KEYS: claim, lease. ARGV: attempt, lease (ms).
_RENEW = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: claim, lease. ARGV: attempt, claim expiry (ms since the epoch).
_FINISH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], 'done:' .. ARGV[1], 'PXAT', ARGV[2])
end
if redis.call('get', KEYS[2]) == ARGV[1] then redis.call('del', KEYS[2]) end
return 1
"""


def claim_key(tenant_id: UUID, stream_id: str) -> str:
    return f"rag:chat-claim:{tenant_id}:{stream_id}"


def lease_key(tenant_id: UUID, stream_id: str) -> str:
    return f"rag:chat-lease:{tenant_id}:{stream_id}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def claim(
    redis: Redis,
    tenant_id: UUID,
    stream_id: str,
    attempt_id: str,
    *,
    deadline: datetime,
    lease_seconds: float,
) -> bool:
    """Whether ``attempt_id`` may answer: nobody holds the stream now (never
    claimed, or its holder's lease ran out) and it was not answered."""
    keys = [claim_key(tenant_id, stream_id), lease_key(tenant_id, stream_id)]
    lease_ms = int(lease_seconds * 1000)
    return bool(await redis.eval(_CLAIM, 2, *keys, attempt_id, _ms(deadline), lease_ms))


async def renew(
    redis: Redis, tenant_id: UUID, stream_id: str, attempt_id: str, *, lease_seconds: float
) -> bool:
    """Extend the lease; False once another attempt holds the claim."""
    keys = [claim_key(tenant_id, stream_id), lease_key(tenant_id, stream_id)]
    return bool(await redis.eval(_RENEW, 2, *keys, attempt_id, int(lease_seconds * 1000)))


async def finish(
    redis: Redis, tenant_id: UUID, stream_id: str, attempt_id: str, *, deadline: datetime
) -> None:
    """The stream is answered (or ended): held as done until its deadline."""
    keys = [claim_key(tenant_id, stream_id), lease_key(tenant_id, stream_id)]
    await redis.eval(_FINISH, 2, *keys, attempt_id, _ms(deadline))


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    holder: str | None  # the attempt that claimed it, if any


async def state(redis: Redis, tenant_id: UUID, stream_id: str) -> Claim:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(claim_key(tenant_id, stream_id))
        pipe.exists(lease_key(tenant_id, stream_id))
        raw, leased = await pipe.execute()
    if raw is None:
        return Claim("unclaimed", None)
    holder: str = raw.decode() if isinstance(raw, bytes) else raw
    if holder.startswith(DONE):
        return Claim("answered", holder.removeprefix(DONE))
    return Claim("answering" if leased else "orphaned", holder)
