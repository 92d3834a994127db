"""An ingest worker with Redis unreachable still indexes, and the tenant's
cached answers are outdated all the same: their invalidation is written by
the status change's own transaction in PostgreSQL, not to Redis after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.api import new_user, upload, wait_for_status
from tests.support.processes import Component, free_port, start_gateway, start_worker


@pytest.fixture(scope="module")
def broken_redis_stack(app_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    env = {
        **app_env,
        "KAFKA_TOPIC_PREFIX": app_env["KAFKA_TOPIC_PREFIX"] + "-noredis",
    }
    # Nothing listens there: every Redis call of this worker fails.
    worker_env = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    worker = start_worker("ingest", worker_env, log_dir, name="ingest-worker-noredis")
    gateway = start_gateway("gateway-noredis", env, log_dir)
    yield gateway
    gateway.stop()
    worker.stop()


@pytest.fixture
async def client(broken_redis_stack: Component) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broken_redis_stack.base_url or "", timeout=30) as http:
        yield http


async def test_without_redis_a_document_is_indexed_and_cached_answers_outdated(
    client: httpx.AsyncClient, log_dir: Path, app_env: dict[str, str]
) -> None:
    user = await new_user(client)
    doc_id = await upload(client, user, "policy.md", b"# Policy\n\nBadges are worn at all times.\n")
    log_path = log_dir / "ingest-worker-noredis.log"
    # The worker shares the stack's database, so its sweeper may also re-queue
    # other tests' documents: only this document's lines are its outcome.
    outcomes = ("Document indexed", "Document failed")
    async with asyncio.timeout(60):
        while True:
            if any(event in line for line in _lines_of(log_path, doc_id) for event in outcomes):
                break
            await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    doc = await wait_for_status(client, user, doc_id)
    assert (doc["status"], doc["chunks"], doc["error"]) == ("indexed", 1, None)
    assert not [line for line in _lines_of(log_path, doc_id) if "Document failed" in line]
    conn = await asyncpg.connect(app_env["DATABASE_URL"])
    try:
        generation = await conn.fetchval(
            "SELECT t.answer_generation FROM tenants t JOIN documents d ON d.tenant_id = t.id"
            " WHERE d.id = $1",
            uuid.UUID(doc_id),
        )
    finally:
        await conn.close()
    assert generation == 1


def _lines_of(log_path: Path, doc_id: str) -> list[str]:
    return [line for line in log_path.read_text().splitlines() if doc_id in line]
