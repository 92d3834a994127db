"""Claiming a stream before answering: never a reason not to answer when
Redis is down (what a claim does is tested against a real Redis:
tests/integration/test_chat_claims.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from query.claims import claim
from shared.contracts.events import ChatRequest


class DownRedis:
    async def eval(self, *args: Any) -> Any:
        raise RedisConnectionError("Connection refused")


def _request() -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        tenant_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message="hi",
        deadline=datetime.now(UTC) + timedelta(seconds=30),
    )


async def test_without_redis_the_request_is_answered_and_counted() -> None:
    before = REGISTRY.get_sample_value("rag_chat_claims_unavailable_total") or 0.0
    assert await claim(DownRedis(), _request(), "attempt-a", 4.0)  # type: ignore[arg-type]
    assert REGISTRY.get_sample_value("rag_chat_claims_unavailable_total") == before + 1
