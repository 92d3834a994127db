"""KAFKA_LINGER_MS reaches the producers every service builds."""

from __future__ import annotations

import time
import uuid

from shared.config import Settings
from shared.contracts.events import TokenReply
from shared.runtime.kafka import create_broker, publish

LINGER_MS = 80


async def test_a_lone_event_waits_the_linger_before_it_is_sent(
    stack_env: dict[str, str],
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=stack_env["KAFKA_BOOTSTRAP_SERVERS"], kafka_linger_ms=LINGER_MS
    )
    broker = create_broker(settings, "linger-test")
    await broker.start()
    topic = f"linger-{uuid.uuid4().hex[:8]}"
    ids = {
        "tenant_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "correlation_id": "c",
        "conversation_id": uuid.uuid4(),
        "stream_id": "stream-linger",
    }
    try:
        await publish(broker, topic, TokenReply(seq=0, text="warm", **ids))  # metadata, topic
        began = time.perf_counter()
        await publish(broker, topic, TokenReply(seq=1, text="held", **ids))
        took = time.perf_counter() - began
    finally:
        await broker.stop()
    # Acknowledged only after the batch waited out the linger (no other
    # event came to fill it).
    assert took >= LINGER_MS / 1000 * 0.9
