"""Resumable chat streams, in Redis: what a gateway replica needs to take
over a stream another one opened, and who is still watching it.

One hash a stream, written by the gateway that opens it: the request (its
owner, its ``reply_to`` partition, enough to ask it again if its worker
dies), ``start`` (an offset of the reply partition at or before the stream's
first reply), how many connections attached to it so far (``attaches``) and
are attached now (``live``), and ``ended`` once the stream was ended for
everyone (``timeout``, ``worker_lost``, or ``abandoned``: its client left
and nobody resumed it within the grace).

A connection that leaves before the answer ends ``detach``-es and remembers
``attaches``; after STREAM_RESUME_GRACE_SECONDS, ``abandon`` ends the stream
only if nobody is attached and nobody attached meanwhile (and the worker has
not finished it): one script, so a resume and the cancel never both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from redis.asyncio import Redis

from shared.contracts.events import ChatRequest
from shared.storage.chat_claims import claim_key

EndReason = Literal["timeout", "worker_lost", "abandoned"]
Abandoned = Literal["abandoned", "answered", "watched", "gone"]
_OUTCOMES: dict[str, Abandoned] = {
    "abandoned": "abandoned",
    "answered": "answered",
    "watched": "watched",
    "gone": "gone",
}

# KEYS: record. ARGV: user id. -> {} (unknown, or someone else's), or
# {state, attaches, request, start} with state 'attached' or the end reason.
_ATTACH = """
if redis.call('hget', KEYS[1], 'user') ~= ARGV[1] then return {} end
local found = redis.call('hmget', KEYS[1], 'request', 'start', 'ended')
if found[3] then return {found[3], 0, found[1], found[2]} end
local attaches = redis.call('hincrby', KEYS[1], 'attaches', 1)
redis.call('hincrby', KEYS[1], 'live', 1)
return {'attached', attaches, found[1], found[2]}
"""
# KEYS: record. -> attaches (0 if the record is gone).
_DETACH = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hincrby', KEYS[1], 'live', -1)
return tonumber(redis.call('hget', KEYS[1], 'attaches'))
"""
# KEYS: record, claim. ARGV: the attaches seen at detach.
_ABANDON = """
if redis.call('exists', KEYS[1]) == 0 then return 'gone' end
local found = redis.call('hmget', KEYS[1], 'live', 'attaches', 'ended')
if found[3] then return 'gone' end
if tonumber(found[1]) > 0 or found[2] ~= ARGV[1] then return 'watched' end
local claim = redis.call('get', KEYS[2])
if claim and string.sub(claim, 1, 5) == 'done:' then return 'answered' end
redis.call('hset', KEYS[1], 'ended', 'abandoned')
return 'abandoned'
"""
# KEYS: record. ARGV: reason. (Never makes a record without its expiry.)
_END = """
if redis.call('exists', KEYS[1]) == 1 then redis.call('hset', KEYS[1], 'ended', ARGV[1]) end
return 1
"""


def stream_key(tenant_id: UUID, stream_id: str) -> str:
    return f"rag:chat-stream:{tenant_id}:{stream_id}"


async def open_stream(redis: Redis, request: ChatRequest, start: int, ttl: int) -> None:
    """Record a stream opened with one connection attached; kept ``ttl`` s."""
    key = stream_key(request.tenant_id, request.stream_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "user": str(request.user_id),
                "request": request.model_dump_json(),
                "start": start,
                "attaches": 1,
                "live": 1,
            },
        )
        pipe.expire(key, ttl)
        await pipe.execute()


@dataclass(frozen=True)
class Attached:
    request: ChatRequest
    start: int
    ended: EndReason | None  # set: nothing more will come; nothing was attached


async def attach(redis: Redis, tenant_id: UUID, user_id: UUID, stream_id: str) -> Attached | None:
    """Attach one more connection to the user's stream; None if there is no
    such stream of this user's (unknown, expired, or someone else's)."""
    found = await redis.eval(_ATTACH, 1, stream_key(tenant_id, stream_id), str(user_id))
    if not found:
        return None
    state, _, request, start = (v.decode() if isinstance(v, bytes) else v for v in found)
    ended: EndReason | None = None if state == "attached" else state  # type: ignore[assignment]
    return Attached(ChatRequest.model_validate_json(request), int(start), ended)


async def detach(redis: Redis, tenant_id: UUID, stream_id: str, keep: int) -> int:
    """A connection left before the answer ended; the stream's record is kept
    at least ``keep`` s more. Returns the attaches so far, for ``abandon``."""
    key = stream_key(tenant_id, stream_id)
    attaches = int(await redis.eval(_DETACH, 1, key))
    if attaches and await redis.ttl(key) < keep:
        await redis.expire(key, keep)
    return attaches


async def abandon(redis: Redis, tenant_id: UUID, stream_id: str, attaches: int) -> Abandoned:
    """End the stream as abandoned if nobody attached since ``detach``
    returned ``attaches``, nobody is attached, and it is not answered already.
    ``watched``: someone is; ``answered``: the worker finished it; ``gone``:
    ended another way, or expired."""
    keys = [stream_key(tenant_id, stream_id), claim_key(tenant_id, stream_id)]
    result = await redis.eval(_ABANDON, 2, *keys, str(attaches))
    outcome = result.decode() if isinstance(result, bytes) else str(result)
    return _OUTCOMES[outcome]


async def end(redis: Redis, tenant_id: UUID, stream_id: str, reason: EndReason) -> None:
    """The stream was ended for everyone: a resume gets this end at once."""
    await redis.eval(_END, 1, stream_key(tenant_id, stream_id), reason)
