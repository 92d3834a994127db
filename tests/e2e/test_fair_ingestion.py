"""Fair ingestion through the stack: while one tenant's import is being
indexed, another tenant's upload waits behind a window of it
(``INGEST_WINDOW_PER_WORKER``), not behind the whole import; and a tenant's
upload goes before its own re-index."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.api import User, new_user, upload, wait_for_status
from tests.support.deployment import RAG
from tests.support.processes import Component, start_gateway, start_worker

IMPORT = 40
REINDEXED = 30
SETTINGS = {"EMBEDDING_PROVIDER": "hashing", "INGEST_WINDOW_PER_WORKER": "2"}


@pytest.fixture(scope="module")
def fair(app_env: dict[str, str], log_dir: Path) -> Iterator[tuple[Component, dict[str, str]]]:
    """A gateway and one ingest worker on topics of their own."""
    env = {**app_env, "KAFKA_TOPIC_PREFIX": f"{app_env['KAFKA_TOPIC_PREFIX']}-fair", **SETTINGS}
    worker = start_worker("ingest", env, log_dir, name="ingest-worker-fair")
    try:
        gateway = start_gateway("gateway-fair", env, log_dir)
        try:
            yield gateway, env
        finally:
            gateway.stop()
    finally:
        worker.stop()


def _archive_page(n: int) -> bytes:
    # About 80 chunks: each takes the worker a moment.
    return "\n\n".join(
        f"## Section {s}\n\n" + f"Archive {n}, entry {s}. " * 40 for s in range(80)
    ).encode()


async def _import(
    client: httpx.AsyncClient, user: User, count: int, lane: str = "interactive"
) -> list[str]:
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> str:
        async with gate:
            return await upload(client, user, f"archive-{n}.md", _archive_page(n), lane)

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def _pending(database_url: str, ids: list[str]) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        pending: int = await conn.fetchval(
            "SELECT count(*) FROM documents WHERE id = ANY($1::uuid[])"
            " AND status IN ('queued', 'processing')",
            ids,
        )
        return pending
    finally:
        await conn.close()


async def test_another_tenant_s_upload_waits_behind_a_window_not_the_import(
    fair: tuple[Component, dict[str, str]],
) -> None:
    gateway, env = fair
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        bulk, small = await new_user(client, "bulk"), await new_user(client, "small")
        archive = await _import(client, bulk, IMPORT)
        began = time.monotonic()
        note = await upload(client, small, "note.md", b"# Note\n\nThe canteen opens at eight.")
        assert (await wait_for_status(client, small, note, timeout=60))["status"] == "indexed"
        waited = time.monotonic() - began
        behind = await _pending(env["DATABASE_URL"], archive)
        for doc in archive:
            assert (await wait_for_status(client, bulk, doc, timeout=300))["status"] == "indexed"
        whole = time.monotonic() - began
    print(
        f"{IMPORT}-document import: the other tenant's note indexed after {waited:.1f} s"
        f" with {behind} of the import still waiting; the import took {whole:.1f} s"
    )
    # Behind the whole import, the note would have come last.
    assert behind >= IMPORT // 2, f"the note waited for {IMPORT - behind} of the import"
    assert waited < whole / 3


async def test_a_tenant_s_upload_goes_before_its_own_re_index(
    fair: tuple[Component, dict[str, str]],
) -> None:
    gateway, env = fair
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        team = await new_user(client, "team")
        old = await _import(client, team, REINDEXED)
        for doc in old:
            assert (await wait_for_status(client, team, doc, timeout=300))["status"] == "indexed"
        reindex = await asyncio.create_subprocess_exec(
            str(RAG),
            "reindex",
            "--tenant",
            f"self-{team.tenant_id}",
            "--no-wait",
            env={**os.environ, **env},
        )
        assert await reindex.wait() == 0
        fresh = await upload(client, team, "fresh.md", b"# Fresh\n\nUploaded during a re-index.")
        assert (await wait_for_status(client, team, fresh, timeout=60))["status"] == "indexed"
        behind = await _pending(env["DATABASE_URL"], old)
    print(f"re-index of {REINDEXED}: the upload made during it indexed with {behind} waiting")
    assert behind >= REINDEXED // 2


async def test_a_tenant_s_upload_goes_before_its_own_bulk_import(
    fair: tuple[Component, dict[str, str]],
) -> None:
    """``lane=bulk`` on the upload (``rag ingest --bulk``): the tenant's next
    ordinary upload does not wait for the import."""
    gateway, env = fair
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        team = await new_user(client, "importer")
        archive = await _import(client, team, REINDEXED, lane="bulk")
        note = await upload(client, team, "note.md", b"# Note\n\nThe lift is out of order.")
        assert (await wait_for_status(client, team, note, timeout=60))["status"] == "indexed"
        behind = await _pending(env["DATABASE_URL"], archive)
        for doc in archive:
            indexed = await wait_for_status(client, team, doc, timeout=300)
            assert (indexed["status"], indexed["lane"]) == ("indexed", "bulk")
    print(f"bulk import of {REINDEXED}: the tenant's own upload indexed with {behind} waiting")
    assert behind >= REINDEXED // 2
