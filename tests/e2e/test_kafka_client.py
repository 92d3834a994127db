"""``ragstream.kafka_client.RagKafkaClient`` against the real stack: an
internal service submits a document and asks about it without HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from ragstream.kafka_client import RagKafkaClient
from shared.config import Settings
from shared.errors import NotFound, PayloadTooLarge, UnsupportedDocument
from tests.support.api import new_user, wait_for_status


@pytest.fixture
async def rag(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RagKafkaClient]:
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    async with RagKafkaClient(Settings()) as client:
        yield client


async def _rows(app_env: dict[str, str], tenant_id: str) -> int:
    conn = await asyncpg.connect(app_env["DATABASE_URL"])
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM documents WHERE tenant_id=$1", uuid.UUID(tenant_id)
        )
    finally:
        await conn.close()
    return count


async def test_submit_then_follow_then_ask(rag: RagKafkaClient, client: httpx.AsyncClient) -> None:
    user = await new_user(client, "kafka-client")
    tenant, me = uuid.UUID(user.tenant_id), uuid.UUID(user.id)
    text = b"Internal memo. The quarterly bonus is paid in the month of Zanzibar."
    started = time.monotonic()
    submitted = await rag.submit_document(tenant, me, "memo.txt", text, content_type="text/plain")
    statuses = [s async for s in rag.statuses(submitted.document_id, max_wait=60)]
    indexed_in = time.monotonic() - started

    # The row said queued (or already processing); the changes followed.
    names = [s.status for s in statuses]
    assert names[-1] == "indexed" and "processing" in names
    assert names[0] in ("queued", "processing")
    assert statuses[-1].chunks >= 1
    assert submitted.size_bytes == len(text)

    # The owner sees it over HTTP like any upload.
    doc = await wait_for_status(client, user, str(submitted.document_id))
    assert doc["status"] == "indexed" and doc["filename"] == "memo.txt" and doc["mine"]

    replies = [r async for r in rag.ask(tenant, me, "When is the quarterly bonus paid?")]
    assert replies[-1].type == "done"
    [sources] = [r for r in replies if r.type == "sources"]
    assert submitted.document_id in {s.document_id for s in sources.sources}
    answer = "".join(r.text for r in replies if r.type == "token")
    assert "Zanzibar" in answer
    assert len({r.stream_id for r in replies}) == 1
    found = await rag.search(tenant, me, "quarterly bonus", top_k=3)
    assert found.outcome == "answered"
    assert found.passages[0].document_id == submitted.document_id
    assert found.passages[0].scores.bm25 is not None
    print(f"submitted to indexed: {indexed_in:.2f} s ({names}); {len(replies)} reply events")


async def test_another_tenant_asking_gets_nothing_of_it(
    rag: RagKafkaClient, client: httpx.AsyncClient
) -> None:
    owner = await new_user(client, "kafka-owner")
    stranger = await new_user(client, "kafka-stranger")
    secret = b"The vault code of the Oslo office is heliotrope."
    submitted = await rag.submit_document(
        uuid.UUID(owner.tenant_id), uuid.UUID(owner.id), "vault.md", secret
    )
    assert [s async for s in rag.statuses(submitted.document_id)][-1].status == "indexed"
    replies = [
        r
        async for r in rag.ask(
            uuid.UUID(stranger.tenant_id), uuid.UUID(stranger.id), "What is the vault code?"
        )
    ]
    assert replies[-1].type == "done"
    [sources] = [r for r in replies if r.type == "sources"]
    assert sources.sources == []
    assert "heliotrope" not in "".join(r.text for r in replies if r.type == "token")
    found = await rag.search(
        uuid.UUID(stranger.tenant_id), uuid.UUID(stranger.id), "vault code heliotrope"
    )
    assert (found.outcome, found.passages) == ("answered", [])
    hidden = await client.get(f"/api/documents/{submitted.document_id}", headers=stranger.headers)
    assert hidden.status_code == 404


async def test_bad_submissions_are_refused_before_anything_is_written(
    rag: RagKafkaClient, client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(client, "kafka-bad")
    tenant, me = uuid.UUID(user.tenant_id), uuid.UUID(user.id)
    with pytest.raises(UnsupportedDocument, match="unsupported file type"):
        await rag.submit_document(tenant, me, "tool.exe", b"MZ")
    with pytest.raises(PayloadTooLarge):  # MAX_UPLOAD_MB=1 in the test stack
        await rag.submit_document(tenant, me, "big.txt", b"x" * (1024 * 1024 + 1))
    with pytest.raises(NotFound, match="no active user"):
        await rag.submit_document(uuid.uuid4(), me, "a.txt", b"someone else's tenant")
    with pytest.raises(NotFound):
        await rag.statuses(uuid.uuid4()).__anext__()
    assert await _rows(app_env, user.tenant_id) == 0
