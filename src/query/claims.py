"""Claiming a chat stream before answering it, so a redelivered request
(the worker that took it crashed before its offset was committed, or an
internal service published it twice) is answered once, not twice.

The claim is a Redis key per stream, set only if absent, that expires at
the request's deadline: after that a redelivery is dropped as expired
anyway. Redis is not required to answer a chat: if it fails the request is
answered unclaimed (counted), and the gateway's lock on one answer attempt
still keeps a second answer out of the client's stream.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from query.metrics import CLAIMS_UNAVAILABLE
from shared.contracts.events import ChatRequest, utcnow

log = structlog.get_logger(__name__)


def claim_key(request: ChatRequest) -> str:
    return f"rag:chat-claim:{request.tenant_id}:{request.stream_id}"


async def claim(redis: Redis, request: ChatRequest, attempt_id: str) -> bool:
    """True if this attempt may answer: it claimed the stream, or Redis failed."""
    expires = max(request.deadline, utcnow() + timedelta(seconds=1))
    try:
        taken = await redis.set(
            claim_key(request), attempt_id, nx=True, pxat=int(expires.timestamp() * 1000)
        )
    except (RedisError, OSError) as exc:
        CLAIMS_UNAVAILABLE.inc()
        log.warning("Stream not claimed, Redis failed; answering anyway", error=str(exc))
        return True
    return bool(taken)
