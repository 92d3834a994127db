"""Claiming a chat stream before answering it, and holding it while
answering (``shared.storage.chat_claims``), so a request delivered again is
answered once while its first worker lives, and again once that worker died.

The worker renews its lease every third of ``CHAT_CLAIM_LEASE_SECONDS``
while it answers; a worker that dies stops renewing, and the gateway waiting
for the stream has the request answered again. Redis is not required to
answer a chat: if it fails the request is answered unclaimed (counted), and
the gateway's lock on one answer attempt still keeps a second answer out of
the client's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from query.metrics import CLAIMS_UNAVAILABLE
from shared.contracts.events import ChatRequest
from shared.storage import chat_claims

log = structlog.get_logger(__name__)


async def claim(redis: Redis, request: ChatRequest, attempt_id: str, lease_seconds: float) -> bool:
    """True if this attempt may answer: it claimed the stream, or Redis failed."""
    try:
        return await chat_claims.claim(
            redis,
            request.tenant_id,
            request.stream_id,
            attempt_id,
            deadline=request.deadline,
            lease_seconds=lease_seconds,
        )
    except (RedisError, OSError) as exc:
        CLAIMS_UNAVAILABLE.inc()
        log.warning("Stream not claimed, Redis failed; answering anyway", error=str(exc))
        return True


@contextlib.asynccontextmanager
async def held(
    redis: Redis, request: ChatRequest, attempt_id: str, lease_seconds: float
) -> AsyncIterator[None]:
    """Renew the claimed stream's lease while the body answers it; mark it
    answered when the body ends, however it ends."""
    renewing = asyncio.create_task(_renew(redis, request, attempt_id, lease_seconds))
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        with contextlib.suppress(RedisError, OSError):
            await chat_claims.finish(
                redis, request.tenant_id, request.stream_id, attempt_id, deadline=request.deadline
            )


async def _renew(redis: Redis, request: ChatRequest, attempt_id: str, lease_seconds: float) -> None:
    while True:
        await asyncio.sleep(lease_seconds / 3)
        try:
            kept = await chat_claims.renew(
                redis, request.tenant_id, request.stream_id, attempt_id, lease_seconds=lease_seconds
            )
        except (RedisError, OSError) as exc:
            # The lease may run out meanwhile: at worst the stream is answered
            # again, and the gateway relays one attempt.
            log.warning("Stream lease not renewed, Redis failed", error=str(exc))
            continue
        if not kept:
            log.warning("Stream claimed by another attempt meanwhile", stream_id=request.stream_id)
            return
