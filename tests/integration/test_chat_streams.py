"""A resumable stream's record against a real Redis: only its user attaches;
a client that left is abandoned only if nobody attached since, nobody is
attached and the answer is not done; a resume and the cancel never both win."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from shared.contracts.events import ChatRequest, ReplyTo
from shared.storage import chat_claims, chat_streams


@pytest.fixture
async def redis(stack_env: dict[str, str]) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack_env["REDIS_URL"])
    yield client
    await client.aclose()


async def _opened(redis: Redis) -> ChatRequest:
    request = ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="hi",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
        reply_to=ReplyTo(topic="t.chat.replies", partition=3),
    )
    await chat_streams.open_stream(redis, request, start=41, ttl=60)
    return request


async def _leave(redis: Redis, request: ChatRequest) -> int:
    return await chat_streams.detach(redis, request.tenant_id, request.stream_id, keep=60)


async def test_only_the_streams_user_attaches_and_gets_its_request(redis: Redis) -> None:
    request = await _opened(redis)
    tenant, stream = request.tenant_id, request.stream_id
    found = await chat_streams.attach(redis, tenant, request.user_id, stream)
    assert found is not None and found.request == request and found.start == 41
    assert found.ended is None
    assert await chat_streams.attach(redis, tenant, uuid.uuid4(), stream) is None
    assert await chat_streams.attach(redis, uuid.uuid4(), request.user_id, stream) is None
    assert await chat_streams.attach(redis, tenant, request.user_id, "0" * 32) is None


async def test_a_stream_left_alone_is_abandoned_and_a_resume_told_so(redis: Redis) -> None:
    request = await _opened(redis)
    tenant, stream = request.tenant_id, request.stream_id
    seen = await _leave(redis, request)
    assert await chat_streams.abandon(redis, tenant, stream, seen) == "abandoned"
    late = await chat_streams.attach(redis, tenant, request.user_id, stream)
    assert late is not None and late.ended == "abandoned"
    assert await chat_streams.abandon(redis, tenant, stream, seen) == "gone"


async def test_a_resume_within_the_grace_keeps_the_answer(redis: Redis) -> None:
    request = await _opened(redis)
    tenant, stream = request.tenant_id, request.stream_id
    seen = await _leave(redis, request)
    assert await chat_streams.attach(redis, tenant, request.user_id, stream) is not None
    assert await chat_streams.abandon(redis, tenant, stream, seen) == "watched"
    # The resumed connection leaves too: its own grace decides.
    again = await _leave(redis, request)
    assert await chat_streams.abandon(redis, tenant, stream, seen) == "watched"
    assert await chat_streams.abandon(redis, tenant, stream, again) == "abandoned"


async def test_another_connection_still_attached_keeps_the_answer(redis: Redis) -> None:
    request = await _opened(redis)
    tenant, stream = request.tenant_id, request.stream_id
    await chat_streams.attach(redis, tenant, request.user_id, stream)  # a second connection
    seen = await _leave(redis, request)
    assert await chat_streams.abandon(redis, tenant, stream, seen) == "watched"


async def test_an_answer_finished_meanwhile_is_not_abandoned(redis: Redis) -> None:
    request = await _opened(redis)
    tenant, stream = request.tenant_id, request.stream_id
    seen = await _leave(redis, request)
    deadline = request.deadline
    assert await chat_claims.claim(redis, tenant, stream, "a1", deadline=deadline, lease_seconds=5)
    await chat_claims.finish(redis, tenant, stream, "a1", deadline=deadline)
    assert await chat_streams.abandon(redis, tenant, stream, seen) == "answered"
    resumed = await chat_streams.attach(redis, tenant, request.user_id, stream)
    assert resumed is not None and resumed.ended is None


async def test_a_resume_racing_the_cancel_never_both_win(redis: Redis) -> None:
    outcomes = []
    for _ in range(50):
        request = await _opened(redis)
        tenant, stream = request.tenant_id, request.stream_id
        seen = await _leave(redis, request)
        resumed, abandoned = await asyncio.gather(
            chat_streams.attach(redis, tenant, request.user_id, stream),
            chat_streams.abandon(redis, tenant, stream, seen),
        )
        assert resumed is not None
        kept = resumed.ended is None
        assert kept != (abandoned == "abandoned"), (resumed, abandoned)
        outcomes.append(kept)
    print(f"50 races: resume won {sum(outcomes)}, cancel won {50 - sum(outcomes)}; both: 0")


async def test_an_end_is_kept_for_a_resume_and_makes_no_record(redis: Redis) -> None:
    request = await _opened(redis)
    tenant, stream = request.tenant_id, request.stream_id
    await chat_streams.end(redis, tenant, stream, "timeout")
    found = await chat_streams.attach(redis, tenant, request.user_id, stream)
    assert found is not None and found.ended == "timeout"
    await chat_streams.end(redis, tenant, "f" * 32, "timeout")
    assert not await redis.exists(chat_streams.stream_key(tenant, "f" * 32))


async def test_leaving_keeps_the_record_for_the_grace(redis: Redis) -> None:
    request = await _opened(redis)
    key = chat_streams.stream_key(request.tenant_id, request.stream_id)
    await redis.expire(key, 5)
    await chat_streams.detach(redis, request.tenant_id, request.stream_id, keep=60)
    assert await redis.ttl(key) > 5
