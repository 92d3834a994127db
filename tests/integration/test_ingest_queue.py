"""The ingest queue's PostgreSQL side against a real PostgreSQL: which
documents a release pass picks (a window per tenant, turns across tenants,
interactive before bulk, one deployment's topic), passes one at a time, the
notifications that wake releasers, and what the sweeper leaves to them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from shared.runtime.metrics import Positions
from shared.storage import documents, ingest_queue
from shared.storage.blobs import blob_key
from shared.storage.db import asyncpg_dsn
from shared.storage.documents import Document, Lane
from shared.storage.migrate import upgrade
from tests.support.deployment import with_database
from tests.support.rows import document_row

TOPIC = "rag.ingest.requests"
OTHER = "other.ingest.requests"


@pytest.fixture(scope="module")
async def database(app_env: dict[str, str]) -> AsyncIterator[str]:
    """A database of the module's own: a pass sees exactly its rows."""
    name = f"queue_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(app_env["DATABASE_URL"]))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = asyncpg_dsn(with_database(app_env["DATABASE_URL"], name))
        await asyncio.to_thread(upgrade, url)
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database, min_size=1, max_size=4)
    await created.execute("TRUNCATE documents, users, tenants CASCADE")
    yield created
    await created.close()


async def _tenant(pool: asyncpg.Pool, name: str) -> uuid.UUID:
    tenant = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, name)
    await pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $1, $2, 'x')",
        tenant,
        name,
    )
    return tenant


async def _waiting(
    pool: asyncpg.Pool,
    tenant: uuid.UUID,
    count: int,
    *,
    lane: Lane = "interactive",
    topic: str = TOPIC,
    minutes_ago: int = 0,
) -> list[uuid.UUID]:
    """``count`` documents handed over to wait on ``topic``, oldest first."""
    ids = []
    for n in range(count):
        age = minutes_ago * 60 - n  # later ones newer
        row = document_row(tenant, status="queued", lane=lane, age_seconds=age)
        await documents.insert(pool, row)
        await ingest_queue.hand_over(pool, row.id, topic, f"upload-{row.id}")
        ids.append(row.id)
    return ids


async def _pass(pool: asyncpg.Pool, window: int, topic: str = TOPIC) -> list[Document]:
    """A release pass that marks what it picks released (offsets made up)."""
    async with pool.acquire() as conn, conn.transaction():
        picked = await ingest_queue.pick(conn, topic, window)
        for n, (doc, _) in enumerate(picked):
            await documents.record_request(conn, doc.id, topic, 0, n)
    return [doc for doc, _ in picked]


async def test_a_pass_gives_each_tenant_its_window_in_turns(pool: asyncpg.Pool) -> None:
    bulk, small = await _tenant(pool, "bulk"), await _tenant(pool, "small")
    archive = await _waiting(pool, bulk, 20, minutes_ago=10)
    notes = await _waiting(pool, small, 2)
    picked = await _pass(pool, window=4)
    # Every tenant's first, then every tenant's second, ...
    assert [d.tenant_id for d in picked][:4] == sorted([bulk, small], key=str) * 2
    assert [d.id for d in picked if d.tenant_id == bulk] == archive[:4]  # oldest first
    assert [d.id for d in picked if d.tenant_id == small] == notes
    # Until some settle, the bulk tenant has no free place; a new note does.
    late = await _waiting(pool, small, 1)
    assert [d.id for d in await _pass(pool, window=4)] == late
    await documents.set_status(pool, archive[0], "indexed", chunks=1)
    await pool.execute("DELETE FROM documents WHERE id = $1", archive[1])
    assert [d.id for d in await _pass(pool, window=4)] == archive[4:6]


async def test_interactive_uploads_go_before_the_tenant_s_bulk_work(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "team")
    reindexed = await _waiting(pool, tenant, 5, lane="bulk", minutes_ago=30)
    uploaded = await _waiting(pool, tenant, 2)
    picked = [d.id for d in await _pass(pool, window=3)]
    assert picked == [*uploaded, reindexed[0]]
    released = await pool.fetch(
        "SELECT id, correlation_id, released_at IS NOT NULL AS released FROM documents"
        " WHERE id = ANY($1::uuid[])",
        picked,
    )
    assert all(r["released"] for r in released)
    assert {r["correlation_id"] for r in released} == {f"upload-{d}" for d in picked}


async def test_another_deployment_s_documents_are_neither_released_nor_counted(
    pool: asyncpg.Pool,
) -> None:
    tenant = await _tenant(pool, "shared-db")
    theirs = await _waiting(pool, tenant, 3, topic=OTHER)
    assert await _pass(pool, window=2) == []
    assert [d.id for d in await _pass(pool, window=2, topic=OTHER)] == theirs[:2]
    ours = await _waiting(pool, tenant, 2)
    assert [d.id for d in await _pass(pool, window=2)] == ours  # theirs not counted


async def test_passes_take_turns_and_never_overfill_a_window(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "busy")
    await _waiting(pool, tenant, 10)
    async with pool.acquire() as first, first.transaction():
        picked = await ingest_queue.pick(first, TOPIC, 4)
        second = asyncio.create_task(_pass(pool, window=4))
        await asyncio.sleep(0.5)
        assert not second.done()  # waits for the first pass to end
        for n, (doc, _) in enumerate(picked):
            await documents.record_request(first, doc.id, TOPIC, 0, n)
    assert await asyncio.wait_for(second, 10) == []  # the window is full
    count = await pool.fetchval(
        "SELECT count(*) FROM documents WHERE released_at IS NOT NULL AND tenant_id = $1", tenant
    )
    assert count == 4


async def test_releasers_are_woken_by_waiting_settled_and_deleted_documents(
    pool: asyncpg.Pool, database: str
) -> None:
    tenant = await _tenant(pool, "woken")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database)
    await listener.add_listener(ingest_queue.CHANNEL, lambda *args: heard.put_nowait(args[3]))

    async def next_heard() -> str | None:
        try:
            return await asyncio.wait_for(heard.get(), 2)
        except TimeoutError:
            return None

    try:
        first, second = await _waiting(pool, tenant, 2)
        assert [await next_heard(), await next_heard()] == [TOPIC, TOPIC]
        await _pass(pool, window=2)
        await documents.touch(pool, first)  # released and still working: nothing to do
        await pool.execute("UPDATE documents SET status = 'processing' WHERE id = $1", first)
        assert await next_heard() is None
        await documents.set_status(pool, first, "indexed", chunks=1)
        assert await next_heard() == TOPIC
        await pool.execute("DELETE FROM documents WHERE id = $1", second)
        assert await next_heard() == TOPIC
    finally:
        await listener.close()


async def test_a_re_index_waits_as_bulk_work(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "reindexed")
    ids = await _waiting(pool, tenant, 3)
    await _pass(pool, window=3)
    await pool.execute(
        "UPDATE documents SET status = 'indexed' WHERE id = ANY($1::uuid[])", ids[:2]
    )
    async with pool.acquire() as conn, conn.transaction():
        again = await ingest_queue.wait_again(conn, ids, ["r-0", "r-1", "r-2"], TOPIC)
    assert sorted(d.id for d in again) == sorted(ids[:2])  # the third was not indexed
    assert {d.lane for d in again} == {"bulk"} and {d.status for d in again} == {"queued"}
    rows = await pool.fetch(
        "SELECT correlation_id FROM documents WHERE released_at IS NULL ORDER BY correlation_id"
    )
    assert [r["correlation_id"] for r in rows] == ["r-0", "r-1"]


async def test_the_sweeper_leaves_waiting_documents_to_the_releasers(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "swept")
    waiting = await _waiting(pool, tenant, 1)
    released = await _waiting(pool, tenant, 1)
    await _pass(pool, window=2)  # releases both ...
    await pool.execute(
        "UPDATE documents SET released_at = NULL WHERE id = $1", waiting[0]
    )  # ... then one waits again
    never_handed_over = replace(
        (await documents.by_id(pool, released[0])) or pytest.fail("row"), id=uuid.uuid4()
    )
    await documents.insert(
        pool, replace(never_handed_over, blob_key=blob_key(tenant, uuid.uuid4()))
    )
    await pool.execute("UPDATE documents SET updated_at = now() - interval '1 hour'")
    # The group has read past every released request: those are stuck.
    consumed = Positions(committed={0: 100}, start={0: 0}, end={0: 100})
    async with pool.acquire() as conn, conn.transaction():
        stuck = await documents.claim_stuck(conn, 60, 10, TOPIC, consumed)
    assert {doc.id for doc, _ in stuck} == {released[0], never_handed_over.id}


async def test_a_document_released_after_a_long_wait_is_not_stuck_at_once(
    pool: asyncpg.Pool,
) -> None:
    tenant = await _tenant(pool, "patient")
    [waited] = await _waiting(pool, tenant, 1, minutes_ago=60)
    # A sweeper reads the log's positions, then a releaser publishes the
    # document past the end it read, then the sweeper reads the rows.
    read_before = Positions(committed={0: 5}, start={0: 0}, end={0: 5})
    async with pool.acquire() as conn, conn.transaction():
        [(doc, _)] = await ingest_queue.pick(conn, TOPIC, 1)
        await documents.record_request(conn, doc.id, TOPIC, 0, 5)
    async with pool.acquire() as conn, conn.transaction():
        stuck = await documents.claim_stuck(conn, 60, 10, TOPIC, read_before)
    assert doc.id == waited
    assert stuck == []
