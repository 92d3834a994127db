"""Each tenant's ingestion backlog, sampled from a real PostgreSQL: the
figures behind ``RagTenantIngestWaiting``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY

from ingest.backlog import sample_once
from shared.storage import documents
from shared.storage.db import asyncpg_dsn
from shared.storage.migrate import upgrade
from tests.support.deployment import with_database
from tests.support.rows import document_row


@pytest.fixture(scope="module")
async def pool(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """A database of the module's own: the counts are exactly its rows."""
    name = f"backlog_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(app_env["DATABASE_URL"]))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(app_env["DATABASE_URL"], name)
        await asyncio.to_thread(upgrade, url)
        created = await asyncpg.create_pool(asyncpg_dsn(url), min_size=1, max_size=2)
        yield created
        await created.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _tenant(pool: asyncpg.Pool, name: str) -> uuid.UUID:
    tenant = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, name)
    await pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $1, $2, 'x')",
        tenant,
        name,
    )
    return tenant


async def _documents(pool: asyncpg.Pool, tenant: uuid.UUID, status: str, ages: list[int]) -> None:
    for age in ages:
        await documents.insert(pool, document_row(tenant, status=status, age_seconds=age))


def _gauge(name: str, tenant: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"tenant": tenant})


async def test_each_tenant_s_backlog_and_its_oldest_wait(pool: asyncpg.Pool) -> None:
    bulk, small, done = [await _tenant(pool, n) for n in ("bulk", "small", "done")]
    await _documents(pool, bulk, "queued", [3600] + [10] * 29)
    await _documents(pool, small, "processing", [120])
    await _documents(pool, done, "indexed", [7200, 7200])
    await sample_once(pool)
    assert _gauge("rag_ingest_backlog_documents", "bulk") == 30
    assert _gauge("rag_ingest_backlog_documents", "small") == 1
    assert 3600 <= (_gauge("rag_ingest_oldest_wait_seconds", "bulk") or 0) < 3700
    assert 120 <= (_gauge("rag_ingest_oldest_wait_seconds", "small") or 0) < 220
    # Nothing waits for a tenant whose documents are all indexed.
    assert _gauge("rag_ingest_backlog_documents", "done") is None
    # Once indexed, a tenant's series goes instead of keeping its last value.
    await pool.execute("UPDATE documents SET status = 'indexed' WHERE tenant_id = $1", small)
    await sample_once(pool)
    assert _gauge("rag_ingest_backlog_documents", "small") is None
    assert _gauge("rag_ingest_backlog_documents", "bulk") == 30
