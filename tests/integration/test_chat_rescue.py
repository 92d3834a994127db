"""The gateway's side of a crashed answer, against a real Redis: a claim
whose lease ran out is asked again once, on every request partition, up to
CHAT_MAX_ATTEMPTS; then the stream ends (``worker_lost``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.streams.inbox import Inbox, StreamCut
from gateway.streams.relay import ChatRelay
from shared.contracts.events import ChatOptions, ChatRequest
from shared.storage import chat_claims

LEASE = 0.2


class Broker:
    """Takes what the relay publishes, as FastStream's broker does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None]] = []

    async def publish(self, body: bytes, topic: str, **options: Any) -> asyncio.Future[None]:
        self.sent.append((topic, options.get("partition")))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
async def redis(stack_env: dict[str, str]) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack_env["REDIS_URL"])
    yield client
    await client.aclose()


def _relay(redis: Redis, broker: Broker) -> ChatRelay:
    settings = SimpleNamespace(chat_claim_lease_seconds=LEASE, chat_max_attempts=3)
    clients = SimpleNamespace(
        redis=redis,
        settings=settings,
        broker=broker,
        topics=SimpleNamespace(chat_requests="t.chat.requests"),
    )
    gateway: Any = SimpleNamespace(clients=clients, request_partitions=[0, 1, 2])
    user: Any = SimpleNamespace(tenant_id=uuid.uuid4(), id=uuid.uuid4())
    relay = ChatRelay(gateway, user, "c", uuid.uuid4(), timeout=30)
    relay._request = ChatRequest(
        correlation_id="c",
        stream_id=relay.stream_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        conversation_id=relay.conversation_id,
        message="hi",
        options=ChatOptions(),
        deadline=datetime.now(UTC) + timedelta(seconds=30),
    )
    return relay


async def _dies(redis: Redis, relay: ChatRelay, attempt: str) -> None:
    """``attempt`` claims the stream, then its worker dies (no renewal)."""
    request = relay._request
    assert request is not None
    assert await chat_claims.claim(
        redis,
        request.tenant_id,
        request.stream_id,
        attempt,
        deadline=request.deadline,
        lease_seconds=LEASE,
    )
    await asyncio.sleep(LEASE * 1.5)


async def test_a_lost_attempt_is_asked_again_until_the_attempts_run_out(redis: Redis) -> None:
    broker = Broker()
    relay = _relay(redis, broker)
    inbox = Inbox(relay.user.tenant_id, relay.user.id, 16)
    await relay._rescue(inbox)
    assert broker.sent == []  # nobody took it yet: waiting, not lost

    await _dies(redis, relay, "attempt-1")
    await relay._rescue(inbox)
    assert broker.sent == [("t.chat.requests", p) for p in (0, 1, 2)]
    assert inbox.attempts == 2
    await relay._rescue(inbox)  # the same lost attempt: asked again already
    assert len(broker.sent) == 3

    await _dies(redis, relay, "attempt-2")
    await relay._rescue(inbox)
    assert (len(broker.sent), inbox.attempts) == (6, 3)

    await _dies(redis, relay, "attempt-3")
    await relay._rescue(inbox)  # CHAT_MAX_ATTEMPTS (3) used up
    assert len(broker.sent) == 6
    with pytest.raises(StreamCut) as cut:
        await inbox.get()
    assert cut.value.reason == "worker_lost"
