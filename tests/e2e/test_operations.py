"""What operators rely on: health, docs, metrics, and logs that follow a
request through every hop without ever carrying a credential."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid

import httpx

from tests.support.api import new_user, upload, wait_for_status
from tests.support.processes import Component


async def test_health_docs_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "failed": [],
        "degraded": [],
        "reply_lease": "held",
    }
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/chat/stream", "/api/documents", "/api/auth/verify"} <= set(paths)
    assert "requestBody" in paths["/api/chat/stream"]["post"]
    # The SSE contract names every event a client must handle.
    described = paths["/api/chat/stream"]["post"]["responses"]["200"]["description"]
    for event in ("sources", "token", "done", "error", "timeout", "reset"):
        assert f"`{event}`" in described, event
    metrics = (await client.get("/metrics")).text
    assert 'rag_http_request_duration_seconds_count{method="GET",route="/health"' in metrics
    assert "process_resident_memory_bytes" in metrics
    for dependency in ("postgres", "kafka", "redis", "chroma"):
        assert f'rag_dependency_up{{dependency="{dependency}"}} 1.0' in metrics
    assert 'rag_db_pool_max{service="gateway"}' in metrics
    assert 'rag_gateway_reply_lease_state{state="held"} 1.0' in metrics


async def _checks_run(client: httpx.AsyncClient) -> float:
    metrics = (await client.get("/metrics")).text
    [line] = [ln for ln in metrics.splitlines() if ln.startswith("rag_dependency_checks_total ")]
    return float(line.split()[1])


async def test_readiness_checks_dependencies_at_most_once_a_second(
    client: httpx.AsyncClient,
) -> None:
    # A public endpoint: polled in a loop, it must not turn into a load on
    # PostgreSQL, Kafka, Redis and Chroma.
    await asyncio.sleep(1.1)  # any earlier check (another test's) is a second old
    before = await _checks_run(client)
    started = time.monotonic()
    answers = await asyncio.gather(*(client.get("/health/ready") for _ in range(200)))
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 200
    checks = await _checks_run(client) - before
    print(f"\nreadiness: {checks:g} dependency checks for 200 calls in {elapsed:.2f} s")
    assert 1 <= checks <= math.ceil(elapsed) + 1, (checks, elapsed)
    await asyncio.sleep(1.1)  # past the second: the next call checks again
    assert (await client.get("/health/ready")).status_code == 200
    assert await _checks_run(client) - before == checks + 1


def _lines(component: Component, correlation_id: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in component.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("correlation_id") == correlation_id]


async def test_correlation_id_follows_a_request_and_secrets_stay_out(
    client: httpx.AsyncClient, gateway: Component, workers: list[Component]
) -> None:
    ingest, query = workers
    user = await new_user(client)
    upload_id = f"upload-{uuid.uuid4().hex}"
    response = await client.post(
        "/api/documents",
        headers={**user.headers, "X-Request-ID": upload_id},
        files={"file": ("hop.txt", b"Correlation ids travel with every event.")},
    )
    assert response.headers["x-request-id"] == upload_id
    assert (await wait_for_status(client, user, response.json()["id"]))["status"] == "indexed"

    chat_id = f"chat-{uuid.uuid4().hex}"
    answered = await client.post(
        "/api/chat",
        headers={**user.headers, "X-Request-ID": chat_id},
        json={"message": "what travel with every event?"},
    )
    assert answered.status_code == 200

    assert {line["event"] for line in _lines(gateway, upload_id)} >= {
        "Document queued",
        "Request finished",
    }
    assert "Document indexed" in {line["event"] for line in _lines(ingest, upload_id)}
    assert "Chat answered" in {line["event"] for line in _lines(query, chat_id)}
    assert all(line["level"] == "INFO" for line in _lines(query, chat_id))

    for component in (gateway, *workers):
        assert user.token not in component.log()
        assert "a-long-password" not in component.log()


async def test_uploads_are_logged_without_their_content(
    client: httpx.AsyncClient, gateway: Component, workers: list[Component]
) -> None:
    user = await new_user(client)
    secret = f"confidential-{uuid.uuid4().hex}"
    doc = await upload(client, user, "c.txt", f"The vault code is {secret}.".encode())
    assert (await wait_for_status(client, user, doc))["status"] == "indexed"
    for component in (gateway, *workers):
        assert secret not in component.log()
