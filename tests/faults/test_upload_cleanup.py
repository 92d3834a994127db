"""A document row that cannot be written: the upload answers 503 (retry
later), never 500, and its blob is removed again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.storage.blob_root import MARKER
from shared.storage.db import asyncpg_dsn
from tests.faults.conftest import FaultStack
from tests.support.api import new_user, upload

REFUSE_INSERTS = """
CREATE FUNCTION test_refuse_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'documents are read-only for this test'; END $$;
CREATE TRIGGER test_refuse_document BEFORE INSERT ON documents
FOR EACH ROW WHEN (NEW.filename = 'refused.txt') EXECUTE FUNCTION test_refuse_document();
"""
ALLOW_INSERTS = """
DROP TRIGGER IF EXISTS test_refuse_document ON documents;
DROP FUNCTION IF EXISTS test_refuse_document();
"""


@pytest.fixture
async def refusing_postgres(fault_stack: FaultStack) -> AsyncIterator[None]:
    """The fault stack's own PostgreSQL, refusing rows for ``refused.txt``."""
    conn = await asyncpg.connect(asyncpg_dsn(fault_stack.env["DATABASE_URL"]))
    try:
        await conn.execute(ALLOW_INSERTS + REFUSE_INSERTS)
        yield
    finally:
        await conn.execute(ALLOW_INSERTS)
        await conn.close()


def _blob_files(blob_dir: Path) -> list[Path]:
    """The documents' blobs (the root's marker is the reconciler's)."""
    return [p for p in blob_dir.rglob("*") if p.is_file() and p.name != MARKER]


async def test_a_failed_row_insert_leaves_no_blob_and_answers_503(
    fault_stack: FaultStack, refusing_postgres: None
) -> None:
    gateway = fault_stack.gateway("gateway-refused-insert")
    blob_dir = Path(fault_stack.env["BLOB_DIR"])
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        response = await client.post(
            "/api/documents",
            headers=user.headers,
            files={"file": ("refused.txt", b"Badges are worn at all times.\n", "text/plain")},
        )
        assert response.status_code == 503, response.text
        assert "try again" in response.json()["detail"]
        assert await asyncio.to_thread(_blob_files, blob_dir) == []
        assert (await client.get("/api/documents", headers=user.headers)).json() == []

        # Any other document is stored as usual.
        doc_id = await upload(client, user, "kept.txt", b"Badges are worn at all times.\n")
    assert [p.name for p in await asyncio.to_thread(_blob_files, blob_dir)] == [doc_id]
    assert "Upload not stored" in gateway.log()
