"""A chat stream's claim against a real Redis: answered once while its
worker lives, answerable again once that worker's lease ran out, never again
once answered; and what the gateway reads of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from query.claims import claim, held
from shared.contracts.events import ChatRequest
from shared.storage import chat_claims

LEASE = 0.3


@pytest.fixture
async def redis(stack_env: dict[str, str]) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack_env["REDIS_URL"])
    yield client
    await client.aclose()


def _request(seconds: float = 30) -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="hi",
        deadline=datetime.now(UTC) + timedelta(seconds=seconds),
    )


async def _state(redis: Redis, request: ChatRequest) -> chat_claims.Claim:
    return await chat_claims.state(redis, request.tenant_id, request.stream_id)


async def test_a_held_stream_is_answered_once_and_then_never_again(redis: Redis) -> None:
    request = _request()
    assert (await _state(redis, request)).state == "unclaimed"
    assert await claim(redis, request, "a", LEASE)
    async with held(redis, request, "a", LEASE):
        # Renewed while held: well past one lease, still the holder's.
        await asyncio.sleep(LEASE * 3)
        assert not await claim(redis, request, "b", LEASE)
        assert await _state(redis, request) == chat_claims.Claim("answering", "a")
    assert await _state(redis, request) == chat_claims.Claim("answered", "a")
    await asyncio.sleep(LEASE * 2)
    assert not await claim(redis, request, "c", LEASE)
    ttl = await redis.pttl(chat_claims.claim_key(request.tenant_id, request.stream_id))
    assert 25_000 < ttl <= 30_000  # kept until the request's deadline


async def test_a_claim_whose_worker_died_is_orphaned_and_taken_over(redis: Redis) -> None:
    request = _request()
    assert await claim(redis, request, "a", LEASE)  # then "a" dies: no renewal
    await asyncio.sleep(LEASE * 1.5)
    assert await _state(redis, request) == chat_claims.Claim("orphaned", "a")
    assert await claim(redis, request, "b", LEASE)
    assert not await claim(redis, request, "c", LEASE)
    # The old holder, back from a pause, can no longer renew or finish it.
    assert not await chat_claims.renew(
        redis, request.tenant_id, request.stream_id, "a", lease_seconds=LEASE
    )
    await chat_claims.finish(
        redis, request.tenant_id, request.stream_id, "a", deadline=request.deadline
    )
    assert await _state(redis, request) == chat_claims.Claim("answering", "b")
