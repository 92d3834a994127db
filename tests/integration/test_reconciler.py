"""The reconciler against real PostgreSQL, Chroma and a blob folder: old
orphans go, young ones (uploads in flight) stay, a document without its blob
goes with its vectors and lexical chunks, a dry run changes nothing, and only
one process reconciles at a time. It refuses, deleting nothing, a blob root
that is missing, empty or another's (its marker), and a run that would remove
more than its share.

The module has a database and a blob folder of its own: the blob root's
marker is recorded per database, and the session's database may be shared
with other runs, each with a blob folder of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from ingest import reconciler
from ingest.reconciler import LOCK_KEY, REFUSED_EXIT, Report, Stores, reconcile_once
from shared.adapters.embedding import HashingEmbedder
from shared.config import Settings
from shared.storage import blob_root, documents
from shared.storage.blobs import BlobInfo, LocalBlobStore, blob_key
from shared.storage.db import asyncpg_dsn
from shared.storage.lexical import IndexedChunk, LexicalIndex
from shared.storage.migrate import upgrade
from shared.storage.vectorstore import Chunk, VectorStore, connect_chroma
from tests.support.deployment import with_database
from tests.support.rows import document_row

MIN_AGE = 3600
OLD = 2 * MIN_AGE
EMBEDDER = HashingEmbedder(32)


@pytest.fixture(scope="module")
async def recon_env(
    app_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The session's services, with a database and a blob folder of the module's own."""
    name = f"reconcile_{uuid.uuid4().hex[:8]}"
    admin = asyncpg_dsn(app_env["DATABASE_URL"])
    await _admin(admin, f'CREATE DATABASE "{name}"')
    url = with_database(app_env["DATABASE_URL"], name)
    await asyncio.to_thread(upgrade, url)
    yield {**app_env, "DATABASE_URL": url, "BLOB_DIR": str(tmp_path_factory.mktemp("recon"))}
    await _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def pool(recon_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(
        asyncpg_dsn(recon_env["DATABASE_URL"]), min_size=1, max_size=4
    )
    assert created is not None
    yield created
    await created.close()


@pytest.fixture(scope="module")
def blobs(recon_env: dict[str, str]) -> LocalBlobStore:
    return LocalBlobStore(Path(recon_env["BLOB_DIR"]))


@pytest.fixture(scope="module")
def vectors(recon_env: dict[str, str]) -> VectorStore:
    # With an embedder: the test writes vectors the way an ingest worker does.
    return VectorStore(connect_chroma(Settings(chroma_url=recon_env["CHROMA_URL"])), EMBEDDER)


@pytest.fixture(scope="module")
def stores(recon_env: dict[str, str], pool: asyncpg.Pool, blobs: LocalBlobStore) -> Stores:
    chroma = connect_chroma(Settings(chroma_url=recon_env["CHROMA_URL"]))
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
        tenant,
        f"recon-{tenant}",
    )
    await pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $1, $2, 'x')"
        " ON CONFLICT DO NOTHING",
        tenant,
        f"recon-{tenant}",
    )
    row = document_row(tenant, id=doc, chunks=1, age_seconds=age)
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


def _run_rag_reconcile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream", "reconcile", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _rag_reconcile(env: dict[str, str], *args: str) -> str:
    done = _run_rag_reconcile(env, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


async def test_rag_reconcile_dry_run_changes_nothing(
    recon_env: dict[str, str],
    pool: asyncpg.Pool,
    blobs: LocalBlobStore,
    vectors: VectorStore,
) -> None:
    tenant = uuid.uuid4()
    orphan = await _blob(blobs, tenant, uuid.uuid4(), OLD)
    lost = await _document(pool, tenant, uuid.uuid4(), OLD)
    await _index(pool, vectors, lost)

    out = await asyncio.to_thread(_rag_reconcile, recon_env, "--dry-run")

    assert f"would remove orphan blob {tenant}/{orphan.name}" in out
    assert f"would remove document without blob {lost.id}" in out
    assert "dry run: nothing changed" in out
    assert orphan.exists()
    assert await _state(pool, vectors, lost) == (True, 1, 1)

    out = await asyncio.to_thread(_rag_reconcile, recon_env)

    assert f"removed orphan blob {tenant}/{orphan.name}" in out
    assert f"removed document without blob {lost.id}" in out
    assert not orphan.exists()
    assert await _state(pool, vectors, lost) == (False, 0, 0)


# --- refusals: a wrong blob root, or too much at once ------------------------


@pytest.fixture
async def marked(pool: asyncpg.Pool, blobs: LocalBlobStore, stores: Stores) -> uuid.UUID:
    """The module's blob root marked, its id recorded: what the first run does."""
    await _reconcile(stores)
    recorded = await blob_root.recorded(pool)
    assert recorded is not None
    return recorded


def _refused(env: dict[str, str], check: str, *args: str) -> str:
    """``rag reconcile`` refusing on ``check``: its stderr."""
    done = _run_rag_reconcile(env, *args)
    assert done.returncode == REFUSED_EXIT, (done.stdout, done.stderr[-3000:])
    assert f"rag reconcile: refused ({check}): " in done.stderr, done.stderr[-3000:]
    assert "rag reconcile: nothing was removed; " in done.stderr
    assert "removed" not in done.stdout
    return done.stderr


async def test_the_first_run_marks_the_blob_root_and_records_its_id(
    blobs: LocalBlobStore, marked: uuid.UUID
) -> None:
    assert (blobs.root / blob_root.MARKER).read_text().strip() == str(marked)


async def test_an_empty_or_missing_blob_root_with_old_rows_is_refused(
    recon_env: dict[str, str],
    pool: asyncpg.Pool,
    vectors: VectorStore,
    stores: Stores,
    marked: uuid.UUID,
    tmp_path: Path,
) -> None:
    # An unmounted volume: the folder is there, empty.
    empty = tmp_path / "unmounted"
    empty.mkdir()
    lost = await _document(pool, uuid.uuid4(), uuid.uuid4(), OLD)
    await _index(pool, vectors, lost)

    report = await reconcile_once(dataclasses.replace(stores, blobs=LocalBlobStore(empty)))

    assert report.refusal is not None and report.refusal.check == "blob-root-empty"
    assert report.rows_without_blob == [] and report.lines() == report.refusal.lines()
    err = await asyncio.to_thread(
        _refused, {**recon_env, "BLOB_DIR": str(empty)}, "blob-root-empty"
    )
    assert f"BLOB_DIR {empty} holds no blobs and no marker" in err
    assert "check that BLOB_DIR is set as on the gateway" in err
    # A misspelt BLOB_DIR: not there at all, and not created either.
    missing = tmp_path / "no-such-folder"
    err = await asyncio.to_thread(
        _refused, {**recon_env, "BLOB_DIR": str(missing)}, "blob-root-missing"
    )
    assert f"BLOB_DIR {missing} does not exist" in err
    assert not missing.exists() and not any(empty.iterdir())
    assert await _state(pool, vectors, lost) == (True, 1, 1)
    assert await blob_root.recorded(pool) == marked


async def test_a_blob_root_with_a_foreign_marker_or_none_is_refused(
    recon_env: dict[str, str],
    pool: asyncpg.Pool,
    vectors: VectorStore,
    marked: uuid.UUID,
    tmp_path: Path,
) -> None:
    # Another deployment's blob store: its own marker, its own blobs.
    foreign = LocalBlobStore(tmp_path / "other")
    tenant = uuid.uuid4()
    theirs = await _blob(foreign, tenant, uuid.uuid4(), OLD)
    other_id = uuid.uuid4()
    (foreign.root / blob_root.MARKER).write_text(f"{other_id}\n")
    lost = await _document(pool, tenant, uuid.uuid4(), OLD)
    await _index(pool, vectors, lost)
    env = {**recon_env, "BLOB_DIR": str(foreign.root)}

    err = await asyncio.to_thread(_refused, env, "blob-root-foreign")

    assert f"is marked '{other_id}'" in err and f"PostgreSQL records blob root {marked}" in err
    assert "rag reconcile --adopt-blob-root" in err
    # Blobs but no marker at all: a copy that lost it, or not ours.
    (foreign.root / blob_root.MARKER).unlink()
    err = await asyncio.to_thread(_refused, env, "blob-root-unmarked")
    assert "holds blobs but no marker" in err
    # A dry run refuses too, but shows what would have gone.
    done = await asyncio.to_thread(_run_rag_reconcile, env, "--dry-run")
    assert done.returncode == REFUSED_EXIT
    assert f"would remove orphan blob {tenant}/{theirs.name}" in done.stdout
    assert "refused (blob-root-unmarked)" in done.stderr
    assert theirs.exists() and not (foreign.root / blob_root.MARKER).exists()
    assert await _state(pool, vectors, lost) == (True, 1, 1)

    # The operator checked: it is ours after all (say, restored without its marker).
    out = await asyncio.to_thread(_rag_reconcile, env, "--adopt-blob-root")

    assert (foreign.root / blob_root.MARKER).read_text().strip() == str(marked)
    assert f"removed orphan blob {tenant}/{theirs.name}" in out
    assert f"removed document without blob {lost.id}" in out
    assert not theirs.exists()
    assert await _state(pool, vectors, lost) == (False, 0, 0)


async def test_a_run_removing_more_than_its_share_is_refused_whole(
    recon_env: dict[str, str],
    pool: asyncpg.Pool,
    blobs: LocalBlobStore,
    vectors: VectorStore,
    stores: Stores,
    marked: uuid.UUID,
) -> None:
    tenant = uuid.uuid4()
    orphan = await _blob(blobs, tenant, uuid.uuid4(), OLD)
    lost = [await _document(pool, tenant, uuid.uuid4(), OLD) for _ in range(3)]
    for doc in lost:
        await _index(pool, vectors, doc)
    total = await pool.fetchval("SELECT count(*) FROM documents")
    capped = {"RECONCILE_MAX_DELETE_FRACTION": "0", "RECONCILE_MAX_DELETE_FLOOR": "2"}

    report = await reconcile_once(
        dataclasses.replace(stores, max_delete_fraction=0.0, max_delete_floor=2)
    )

    assert report.refusal is not None and report.refusal.check == "delete-share"
    err = await asyncio.to_thread(_refused, {**recon_env, **capped}, "delete-share")
    assert f"would remove 3 documents without blob of {total}" in err
    assert "RECONCILE_MAX_DELETE_FRACTION=0 allows (2)" in err
    assert "RECONCILE_MAX_DELETE_FRACTION=1 rag reconcile" in err
    # Refused whole: the orphan blob, within the cap, stays too.
    assert orphan.exists()
    for doc in lost:
        assert await _state(pool, vectors, doc) == (True, 1, 1)

    # What the refusal says to do, once the dry run looked right.
    out = await asyncio.to_thread(
        _rag_reconcile, {**recon_env, **capped, "RECONCILE_MAX_DELETE_FRACTION": "1"}
    )

    assert "1 orphan blobs, 3 documents without blob" in out
    assert not orphan.exists()
    for doc in lost:
        assert await _state(pool, vectors, doc) == (False, 0, 0)


async def test_a_worker_logs_a_refusal_deletes_nothing_and_keeps_going(
    recon_env: dict[str, str],
    pool: asyncpg.Pool,
    vectors: VectorStore,
    marked: uuid.UUID,
    tmp_path: Path,
) -> None:
    lost = await _document(pool, uuid.uuid4(), uuid.uuid4(), OLD)
    await _index(pool, vectors, lost)
    settings = Settings(
        database_url=recon_env["DATABASE_URL"],
        chroma_url=recon_env["CHROMA_URL"],
        blob_dir=tmp_path,  # empty: an unmounted volume
        reconcile_interval_seconds=1,
    )
    clients = SimpleNamespace(settings=settings, pool=pool, blobs=LocalBlobStore(tmp_path))
    before = (
        REGISTRY.get_sample_value("rag_reconcile_refused_total", {"check": "blob-root-empty"})
        or 0.0
    )

    with capture_logs() as logs:
        worker = asyncio.create_task(reconciler.reconcile_forever(clients))  # type: ignore[arg-type]
        await asyncio.sleep(2.5)
        assert not worker.done()  # still running
        worker.cancel()
    refused = REGISTRY.get_sample_value("rag_reconcile_refused_total", {"check": "blob-root-empty"})
    assert (refused or 0.0) - before >= 2  # refused each time, and went on
    [refusal, *_] = [line for line in logs if line["event"] == "Reconciliation refused"]
    assert refusal["log_level"] == "error" and refusal["check"] == "blob-root-empty"
    assert "check that BLOB_DIR is set" in refusal["action"]
    assert await _state(pool, vectors, lost) == (True, 1, 1)
