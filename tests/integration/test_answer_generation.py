"""The answer cache's generation (migration 0006): every change to what a
tenant's users can read bumps it in the change's own transaction, whichever
code path makes the change; nothing else does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.storage import documents
from shared.storage.cache import answer_generation, bump_answer_generation
from shared.storage.migrate import upgrade
from tests.support.rows import document_row


@pytest.fixture(scope="module")
async def pool(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(upgrade, stack_env["DATABASE_URL"])
    created = await asyncpg.create_pool(stack_env["DATABASE_URL"], min_size=1, max_size=2)
    assert created is not None
    yield created
    await created.close()


async def _tenant_with_document(pool: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    await pool.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, f"gen-{tenant}")
    await pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $2, $3, 'x')",
        user,
        tenant,
        f"gen-{user}",
    )
    doc = document_row(tenant, user, status="queued", filename="policy.md")
    await documents.insert(pool, doc)
    return tenant, user, doc.id


async def test_each_change_to_what_users_read_bumps_the_generation(pool: asyncpg.Pool) -> None:
    tenant, user, doc = await _tenant_with_document(pool)
    other, _, _ = await _tenant_with_document(pool)

    async def generation() -> int:
        return await answer_generation(pool, tenant)

    assert await generation() == 0
    await documents.claim(pool, doc)  # queued -> processing: nothing readable changed
    assert await generation() == 0
    await documents.set_status(pool, doc, "indexed", chunks=3)  # searchable now
    assert await generation() == 1
    async with pool.acquire() as conn, conn.transaction():
        await documents.set_visibility(conn, tenant, user, doc, "tenant")  # shared
    assert await generation() == 2
    async with pool.acquire() as conn, conn.transaction():
        await documents.set_visibility(conn, tenant, user, doc, "tenant")  # a repeat
    assert await generation() == 2
    await documents.set_status(pool, doc, "indexed", chunks=5)  # re-indexed, new chunks
    assert await generation() == 3
    await documents.touch(pool, doc)
    assert await generation() == 3
    # The reconciler's statement, not the owner's: any delete counts.
    await pool.execute("DELETE FROM documents WHERE id = $1", doc)
    assert await generation() == 4
    await bump_answer_generation(pool, tenant)
    assert await generation() == 5
    assert await answer_generation(pool, other) == 0


async def test_a_change_rolled_back_takes_its_bump_with_it(pool: asyncpg.Pool) -> None:
    tenant, _, doc = await _tenant_with_document(pool)
    seen_inside: list[int] = []

    async def change_that_fails() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE documents SET status = 'indexed' WHERE id = $1", doc)
            query = "SELECT answer_generation FROM tenants WHERE id = $1"
            seen_inside.append(await conn.fetchval(query, tenant))
            raise RuntimeError("the change fails after its bump")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    assert seen_inside == [1]
    assert await answer_generation(pool, tenant) == 0
    assert await answer_generation(pool, uuid.uuid4()) == 0  # no such tenant: nothing cached
