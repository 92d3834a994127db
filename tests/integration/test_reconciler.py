"""The reconciler against real PostgreSQL, Chroma and the suite's blob
folder: old orphans go, young ones (uploads in flight) stay, a document
without its blob goes with its vectors and lexical chunks, a dry run changes
nothing, and only one process reconciles at a time."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from ingest import reconciler
from ingest.reconciler import LOCK_KEY, Report, Stores, reconcile_once
from shared.adapters.embedding import HashingEmbedder
from shared.config import Settings
from shared.storage import documents
from shared.storage.blobs import BlobInfo, LocalBlobStore, blob_key
from shared.storage.db import asyncpg_dsn
from shared.storage.lexical import IndexedChunk, LexicalIndex
from shared.storage.vectorstore import Chunk, VectorStore, connect_chroma

MIN_AGE = 3600
OLD = 2 * MIN_AGE
EMBEDDER = HashingEmbedder(32)


@pytest.fixture(scope="module")
async def pool(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(
        asyncpg_dsn(app_env["DATABASE_URL"]), min_size=1, max_size=4
    )
    assert created is not None
    yield created
    await created.close()


@pytest.fixture(scope="module")
def blobs(app_env: dict[str, str]) -> LocalBlobStore:
    return LocalBlobStore(Path(app_env["BLOB_DIR"]))


@pytest.fixture(scope="module")
def vectors(app_env: dict[str, str]) -> VectorStore:
    # With an embedder: the test writes vectors the way an ingest worker does.
    return VectorStore(connect_chroma(Settings(chroma_url=app_env["CHROMA_URL"])), EMBEDDER)


@pytest.fixture(scope="module")
def stores(app_env: dict[str, str], pool: asyncpg.Pool, blobs: LocalBlobStore) -> Stores:
    chroma = connect_chroma(Settings(chroma_url=app_env["CHROMA_URL"]))
    return Stores(pool, blobs, VectorStore(chroma, None), MIN_AGE)


async def _reconcile(stores: Stores, *, dry_run: bool = False) -> Report:
    # An ingest worker of the suite may be reconciling right now: wait our turn.
    for _ in range(150):
        report = await reconcile_once(stores, dry_run=dry_run)
        if report.ran:
            return report
        await asyncio.sleep(0.2)
    raise TimeoutError("the reconcile lock was never free")


def _age(path: Path, seconds: int) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def _blob(blobs: LocalBlobStore, tenant: uuid.UUID, doc: uuid.UUID, age: int) -> Path:
    key = blob_key(tenant, doc)
    await blobs.put(key, io.BytesIO(b"some text"), 1024)
    path = blobs.root / key
    _age(path, age)
    return path


async def _document(
    pool: asyncpg.Pool, tenant: uuid.UUID, doc: uuid.UUID, age: int
) -> documents.Document:
    """A user (its id is the tenant's) and a document row created ``age`` seconds ago."""
    await pool.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant, f"recon-{tenant}",
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $1, $2, 'x')"
        " ON CONFLICT DO NOTHING",
        tenant, f"recon-{tenant}",
    )  # fmt: skip
    then = datetime.now(UTC) - timedelta(seconds=age)
    row = documents.Document(
        id=doc, tenant_id=tenant, user_id=tenant, filename="notes.txt",
        content_type="text/plain", size_bytes=9, sha256="0" * 64, blob_key=blob_key(tenant, doc),
        status="indexed", chunks=1, error=None, created_at=then, updated_at=then,
    )  # fmt: skip
    await documents.insert(pool, row)
    return row


async def _index(pool: asyncpg.Pool, vectors: VectorStore, doc: documents.Document) -> None:
    text = "badges are worn at all times"
    [vector] = EMBEDDER.embed([text])
    chunk_id = f"{doc.id}:0:x"
    await vectors.upsert(
        [Chunk(chunk_id, doc.tenant_id, doc.user_id, doc.id, doc.filename, 0, text, vector)]
    )
    await LexicalIndex(pool).replace_document(
        doc.tenant_id, doc.user_id, doc.id, [IndexedChunk(chunk_id, 0, text)]
    )


async def _state(
    pool: asyncpg.Pool, vectors: VectorStore, doc: documents.Document
) -> tuple[bool, int, int]:
    """(row exists, lexical chunks, vectors) of ``doc``."""
    row = await documents.by_id(pool, doc.id)
    lexical = await pool.fetchval("SELECT count(*) FROM chunks WHERE document_id = $1", doc.id)
    ids = await vectors.chunk_ids(doc.tenant_id, doc.user_id, doc.id)
    return row is not None, lexical, len(ids)


def _reconciled(kind: str) -> float:
    return REGISTRY.get_sample_value("rag_reconciled_total", {"kind": kind}) or 0.0


async def test_an_old_orphan_blob_goes_and_a_young_or_owned_one_stays(
    pool: asyncpg.Pool, blobs: LocalBlobStore, stores: Stores
) -> None:
    tenant = uuid.uuid4()
    old_orphan = await _blob(blobs, tenant, uuid.uuid4(), OLD)
    # An upload in flight: its blob is written, its row not yet.
    young_orphan = await _blob(blobs, tenant, uuid.uuid4(), 5)
    owned_doc = uuid.uuid4()
    owned = await _blob(blobs, tenant, owned_doc, OLD)
    await _document(pool, tenant, owned_doc, OLD)
    # What a gateway killed mid-write leaves.
    partial = blobs.root / f"{tenant}/{uuid.uuid4()}.partial"
    partial.write_bytes(b"half a fi")
    _age(partial, OLD)
    before = _reconciled("blob")

    report = await _reconcile(stores)

    assert not old_orphan.exists() and not partial.exists()
    assert young_orphan.exists() and owned.exists()
    mine = {key for key in report.orphan_blobs if key.startswith(str(tenant))}
    assert mine == {f"{tenant}/{old_orphan.name}", f"{tenant}/{partial.name}"}
    assert _reconciled("blob") - before >= 2


async def test_blobs_are_listed_a_page_at_a_time(
    blobs: LocalBlobStore, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = uuid.uuid4()
    paths = [await _blob(blobs, tenant, uuid.uuid4(), OLD) for _ in range(5)]
    listed = [len(page) async for page in blobs.pages(2)]
    assert max(listed) == 2 and sum(listed) >= 5
    seen: list[int] = []
    real_pages = blobs.pages

    def spy(size: int) -> AsyncIterator[list[BlobInfo]]:
        seen.append(size)
        return real_pages(size)

    monkeypatch.setattr(reconciler, "PAGE", 2)
    monkeypatch.setattr(blobs, "pages", spy)

    await _reconcile(stores)

    assert seen == [2]
    assert not any(path.exists() for path in paths)


async def test_an_old_document_without_blob_goes_with_its_vectors_and_chunks(
    pool: asyncpg.Pool, blobs: LocalBlobStore, vectors: VectorStore, stores: Stores
) -> None:
    tenant = uuid.uuid4()
    lost = await _document(pool, tenant, uuid.uuid4(), OLD)
    young = await _document(pool, tenant, uuid.uuid4(), 5)
    whole = await _document(pool, tenant, uuid.uuid4(), OLD)
    await _blob(blobs, tenant, whole.id, OLD)
    for doc in (lost, young, whole):
        await _index(pool, vectors, doc)
    before = _reconciled("document")

    report = await _reconcile(stores)

    assert lost.id in report.rows_without_blob
    assert await _state(pool, vectors, lost) == (False, 0, 0)
    assert await _state(pool, vectors, young) == (True, 1, 1)
    assert await _state(pool, vectors, whole) == (True, 1, 1)
    assert _reconciled("document") - before >= 1


async def test_only_one_process_reconciles_at_a_time(
    pool: asyncpg.Pool, blobs: LocalBlobStore, stores: Stores
) -> None:
    orphan = await _blob(blobs, uuid.uuid4(), uuid.uuid4(), OLD)
    async with pool.acquire() as other:
        # Another ingest worker, mid-run.
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        try:
            report = await reconcile_once(stores)
        finally:
            await other.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    assert not report.ran and orphan.exists()
    await _reconcile(stores)
    assert not orphan.exists()


def _rag_reconcile(app_env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ragstream", "reconcile", *args],
        env={**os.environ, **app_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_rag_reconcile_dry_run_changes_nothing(
    app_env: dict[str, str],
    pool: asyncpg.Pool,
    blobs: LocalBlobStore,
    vectors: VectorStore,
) -> None:
    tenant = uuid.uuid4()
    orphan = await _blob(blobs, tenant, uuid.uuid4(), OLD)
    lost = await _document(pool, tenant, uuid.uuid4(), OLD)
    await _index(pool, vectors, lost)

    out = await asyncio.to_thread(_rag_reconcile, app_env, "--dry-run")

    assert f"would remove orphan blob {tenant}/{orphan.name}" in out
    assert f"would remove document without blob {lost.id}" in out
    assert "dry run: nothing changed" in out
    assert orphan.exists()
    assert await _state(pool, vectors, lost) == (True, 1, 1)

    out = await asyncio.to_thread(_rag_reconcile, app_env)

    assert f"removed orphan blob {tenant}/{orphan.name}" in out
    assert f"removed document without blob {lost.id}" in out
    assert not orphan.exists()
    assert await _state(pool, vectors, lost) == (False, 0, 0)
