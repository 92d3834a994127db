"""Claiming a stream before answering: once per stream, and never a reason
not to answer when Redis is down."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from query.claims import claim, claim_key
from shared.contracts.events import ChatRequest


class FakeRedis:
    def __init__(self, fail: bool = False) -> None:
        self.keys: dict[str, tuple[str, int]] = {}
        self.fail = fail

    async def set(self, key: str, value: str, *, nx: bool, pxat: int) -> bool | None:
        if self.fail:
            raise RedisConnectionError("Connection refused")
        assert nx
        if key in self.keys:
            return None
        self.keys[key] = (value, pxat)
        return True


def _request() -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="hi",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
    )


async def test_a_stream_is_claimed_once_until_its_deadline() -> None:
    redis: Any = FakeRedis()
    request = _request()
    assert await claim(redis, request, "attempt-a")
    assert not await claim(redis, request, "attempt-b")
    value, expires_ms = redis.keys[claim_key(request)]
    assert value == "attempt-a"
    assert expires_ms == int(request.deadline.timestamp() * 1000)


async def test_without_redis_the_request_is_answered_and_counted() -> None:
    before = REGISTRY.get_sample_value("rag_chat_claims_unavailable_total") or 0.0
    assert await claim(FakeRedis(fail=True), _request(), "attempt-a")  # type: ignore[arg-type]
    assert REGISTRY.get_sample_value("rag_chat_claims_unavailable_total") == before + 1
