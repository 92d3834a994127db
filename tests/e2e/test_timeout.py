"""With no query worker, a stream ends in a timeout event and a cancel."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import new_user, stream_chat
from tests.support.kafka import read_until
from tests.support.processes import Component, start_gateway


@pytest.fixture(scope="module")
def idle_gateway(app_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    # Topics of its own, which no worker reads.
    env = {**app_env, "KAFKA_TOPIC_PREFIX": f"idle-{uuid.uuid4().hex[:8]}"}
    gateway = start_gateway("idle-gateway", env, log_dir)
    yield gateway
    gateway.stop()


async def test_stalled_stream_times_out_logs_and_cancels(idle_gateway: Component) -> None:
    async with httpx.AsyncClient(base_url=idle_gateway.base_url or "") as client:
        user = await new_user(client)
        started = time.monotonic()
        response, events = await stream_chat(
            client, user, {"message": "anyone there?", "stream_timeout": 1.5}
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert [e.event for e in events] == ["timeout"]
    assert events[0].data["stream_timeout"] == 1.5
    assert 1.4 < elapsed < 10
    request_id = response.headers["x-request-id"]

    log_lines = [line for line in idle_gateway.log().splitlines() if "Stream timeout" in line]
    assert any(request_id in line for line in log_lines)

    prefix = idle_gateway.env["KAFKA_TOPIC_PREFIX"]
    cancels = await read_until(
        idle_gateway.env["KAFKA_BOOTSTRAP_SERVERS"],
        f"{prefix}.chat.cancel",
        lambda msgs: any(m["correlation_id"] == request_id for m in msgs),
    )
    [cancel] = [m for m in cancels if m["correlation_id"] == request_id]
    assert cancel["reason"] == "timeout"
    assert cancel["user_id"] == user.id


async def test_whole_answer_times_out_with_504(idle_gateway: Component) -> None:
    async with httpx.AsyncClient(base_url=idle_gateway.base_url or "") as client:
        user = await new_user(client)
        response = await client.post(
            "/api/chat", headers=user.headers, json={"message": "hello?", "stream_timeout": 1}
        )
    assert response.status_code == 504
    assert response.json() == {"detail": "no answer for 1 seconds"}
