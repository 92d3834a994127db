"""Infrastructure restarts under load: Kafka restarted while documents are
uploaded, Redis stopped while people chat. Nothing accepted is lost and
everything recovers by itself."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from redis import Redis

from tests.faults.conftest import FaultStack
from tests.support.api import User, new_user, stream_chat, wait_for_status
from tests.support.stores import vectors_per_document

FAST = {"EMBEDDING_PROVIDER": "hashing"}


def _document(n: int) -> bytes:
    return f"# Memo {n}\n\nThe code word for memo {n} is falcon-{n}.\n".encode()


def _sample(metrics: str, name: str) -> float:
    [line] = [line for line in metrics.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


@dataclass
class _Upload:
    sent: float  # time.monotonic() when the request went out
    answered: float
    response: httpx.Response


async def _upload_all(
    client: httpx.AsyncClient, user: User, count: int, pause: float
) -> list[_Upload]:
    """Upload ``count`` documents one after another."""
    uploads = []
    for n in range(count):
        sent = time.monotonic()
        response = await client.post(
            "/api/documents",
            headers=user.headers,
            files={"file": (f"memo-{n}.md", _document(n), "text/markdown")},
        )
        uploads.append(_Upload(sent, time.monotonic(), response))
        await asyncio.sleep(pause)
    return uploads


async def _chat_until_answered(client: httpx.AsyncClient, user: User, limit: float) -> float:
    """Seconds until a chat ends with ``done``."""
    began = time.monotonic()
    while True:
        try:
            response, events = await stream_chat(
                client, user, {"message": "What is the code word for memo 1?", "stream_timeout": 5}
            )
            if response.status_code == 200 and events and events[-1].event == "done":
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        assert time.monotonic() - began < limit, f"no answer within {limit:g} s"
        await asyncio.sleep(1)


async def test_kafka_restarted_under_load_loses_no_accepted_upload(
    fault_stack: FaultStack,
) -> None:
    fault_stack.worker("ingest", "ingest-kafka-restart", **FAST)
    fault_stack.worker("query", "query-kafka-restart", **FAST)
    gateway = fault_stack.gateway("gateway-kafka-restart", **FAST)
    kafka = fault_stack.stack.kafka
    assert kafka is not None
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        running = asyncio.create_task(_upload_all(client, user, count=40, pause=0.15))
        await asyncio.sleep(1.5)
        down_at = time.monotonic()
        await asyncio.to_thread(kafka.stop)
        await asyncio.sleep(3)
        await asyncio.to_thread(kafka.start)
        up_at = time.monotonic()
        uploads = await running
        recovered = await _chat_until_answered(client, user, limit=30)
        accepted = [u.response.json()["id"] for u in uploads if u.response.status_code == 202]
        refused = [u.response for u in uploads if u.response.status_code != 202]
        docs = [await wait_for_status(client, user, doc_id, timeout=60) for doc_id in accepted]
        listed = await client.get("/api/documents", params={"limit": 500}, headers=user.headers)
    vectors = await vectors_per_document(fault_stack.env["CHROMA_URL"], accepted)
    indexed = [d for d in docs if d["status"] == "indexed" and vectors[d["id"]] == d["chunks"] > 0]
    during = [u for u in uploads if u.sent < up_at and u.answered > down_at]
    print(
        f"injected: Kafka stopped for 3 s at {down_at:.0f} (back after {up_at - down_at:.1f} s)"
        f" during 40 uploads, {len(during)} of them in flight while it was down;"
        f" accepted {len(accepted)}, refused with 503 {len(refused)};"
        f" chat answered again {recovered:.1f} s after restart;"
        f" lost: {len(accepted) - len(indexed)} of {len(accepted)} accepted"
    )
    # The outage fell inside the uploads: some were sent before it (and
    # accepted), some were in flight while Kafka was down.
    assert uploads[0].response.status_code == 202 and uploads[0].answered < down_at
    assert during, "no upload overlapped the outage: the test injected nothing"
    # Each upload either accepted, or refused as retryable: never a 500.
    for response in refused:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
    # Every accepted upload was indexed, with each chunk's vector in Chroma.
    assert len(indexed) == len(accepted), (docs, vectors)
    # A refused upload left no document behind; an accepted one is listed.
    assert listed.status_code == 200
    assert {d["id"] for d in listed.json()} == set(accepted)


async def test_chats_answer_without_redis_and_the_lease_comes_back(
    fault_stack: FaultStack,
) -> None:
    env = {**FAST, "RAG_USE_CACHE": "true"}
    fault_stack.worker("ingest", "ingest-redis-stop", **env)
    fault_stack.worker("query", "query-redis-stop", **env)
    gateway = fault_stack.gateway("gateway-redis-stop", **env)
    redis_service = fault_stack.stack.redis
    assert redis_service is not None
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        response = await client.post(
            "/api/documents",
            headers=user.headers,
            files={"file": ("memo-1.md", _document(1), "text/markdown")},
        )
        assert (await wait_for_status(client, user, response.json()["id"]))["status"] == "indexed"

        await asyncio.to_thread(redis_service.stop)
        try:
            answered = []
            for _ in range(3):
                _, events = await stream_chat(
                    client, user, {"message": "What is the code word for memo 1?"}
                )
                answered.append(bool(events) and events[-1].event == "done")
            readiness = await client.get("/health/ready")
        finally:
            await asyncio.to_thread(redis_service.start)
        # A Redis that comes back empty (restarted without its data, or
        # flushed): the lease is gone and must be taken again.
        redis = Redis.from_url(fault_stack.env["REDIS_URL"])
        redis.flushall()
        began = time.monotonic()
        while not redis.keys("rag:reply-partition:*"):
            assert time.monotonic() - began < 30, "the reply lease was never re-acquired"
            await asyncio.sleep(0.5)
        regained = time.monotonic() - began
        ready_after = await client.get("/health/ready")
        metrics = (await client.get("/metrics")).text
        _, after = await stream_chat(client, user, {"message": "What is the code word for memo 1?"})
    ready = readiness.json()
    print(
        f"injected: Redis stopped for 3 chats, then flushed; answered {sum(answered)} of 3;"
        f" readiness meanwhile {readiness.status_code} {ready['status']}"
        f" (degraded {ready['degraded']}), after {ready_after.status_code};"
        f" lease re-acquired {regained:.1f} s after the flush; lost: {3 - sum(answered)} chats"
    )
    assert answered == [True, True, True]
    # Redis is not required: readiness stays 200 while it is down, saying so.
    assert (readiness.status_code, ready["status"], ready["degraded"]) == (200, "ready", ["redis"])
    after_body = ready_after.json()
    assert (ready_after.status_code, after_body["status"]) == (200, "ready"), after_body
    assert (after_body["degraded"], after_body["reply_lease"]) == ([], "held"), after_body
    assert _sample(metrics, "rag_gateway_reply_lease_lost_total") >= 1
    assert after and after[-1].event == "done"
