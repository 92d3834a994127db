"""Backups and ``rag reindex``, with real services: a deployment is backed up
(``pg_dump -Fc`` and a copy of the blob folder), wiped (its database, blob
folder and Chroma collection), restored, and re-indexed, after which the same
user's answers cite the same documents; an older release's dump is restored
into an empty database by docs/backup.md's commands and migrated; a re-index
while users ask keeps answering; a re-index of one tenant touches only that
tenant's documents.

Each test has a deployment of its own (``tests/support/deployment.py``): a
database, blob folder, topic prefix and processes nobody else uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory

from ragstream.localstack.postgres import postgres_bin
from shared.storage.migrate import alembic_config, upgrade
from tests.support.api import PASSWORD, User, answer_text, new_user, upload, wait_for_status
from tests.support.deployment import (
    RAG,
    Deployment,
    ask,
    cited_documents,
    delete_collections,
    with_database,
)
from tests.support.stores import vectors_per_document

FIRE = (
    b"# Fire drill\n\n"
    b"When the alarm sounds, everyone gathers at the assembly point by the fountain.\n"
)
QUESTION = "Where does everyone gather when the fire alarm sounds?"
ROOT = Path(__file__).parents[2]
OTHERS = {
    "badges.md": b"# Badges\n\nVisitors collect a temporary badge at reception and return it.\n",
    "parking.md": b"# Parking\n\nThe underground garage opens at seven; cars charge on level two.\n",
}


@pytest.fixture
async def deployment(
    stack_env: dict[str, str], tmp_path: Path, log_dir: Path
) -> AsyncIterator[Deployment]:
    base = {
        **stack_env,
        "SECRET_KEY": secrets.token_hex(32),
        "LOG_LEVEL": "INFO",
        "ALLOW_REGISTRATION": "true",
        "LOGIN_ATTEMPTS_PER_MINUTE": "10000",
        # Answers from the vectors alone: an answer citing a document proves
        # its vectors are there.
        "RETRIEVAL_MODE": "dense",
    }
    made = Deployment(base, tmp_path, log_dir)
    await made.create_database()
    try:
        yield made
    finally:
        made.stop()
        await made.drop_database()


async def _log_in(client: httpx.AsyncClient, username: str, user_id: str) -> User:
    login = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return User(username, login.json()["access_token"], user_id)


def _finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def _rates(output: str) -> tuple[float, float]:
    found = re.search(r"([\d.]+) documents/s, ([\d.]+) chunks/s", output)
    assert found, output
    return float(found[1]), float(found[2])


async def _rows(url: str) -> dict[str, tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, status, chunks, updated_at FROM documents")
    finally:
        await conn.close()
    return {str(r["id"]): (r["status"], r["chunks"], r["updated_at"]) for r in rows}


async def test_a_restored_backup_is_reindexed_and_answers_cite_the_same_documents(
    deployment: Deployment, stack_env: dict[str, str], tmp_path: Path
) -> None:
    # Vectors of a model of its own: the collections it wipes are nobody else's.
    dim = random.randint(1000, 4000)
    model = {"EMBEDDING_PROVIDER": "hashing", "EMBEDDING_DIM": str(dim)}
    collections = f"chunks-hashing-{dim}-{dim}-"  # one per tenant
    gateway = deployment.start(overrides=model)
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        fire = await upload(client, user, "fire-drill.md", FIRE)
        ids = [fire] + [await upload(client, user, n, body) for n, body in OTHERS.items()]
        for doc_id in ids:
            assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
        cited = cited_documents(await ask(client, user, QUESTION))
        assert fire in cited

    # The backup: the database in PostgreSQL's custom format, and the blobs.
    dump, blob_copy = tmp_path / "rag.dump", tmp_path / "blobs-backup"
    deployment.pg_dump(dump)
    shutil.copytree(deployment.blob_dir, blob_copy)

    # The disaster: writers stopped, then every store of the deployment lost.
    deployment.stop()
    await deployment.drop_database()
    shutil.rmtree(deployment.blob_dir)
    assert await delete_collections(stack_env["CHROMA_URL"], collections) >= len(ids)

    # The restore (docs/runbook.md): database, blobs, migrations, workers.
    await deployment.create_database(migrate=False)
    deployment.pg_restore(dump)
    shutil.copytree(blob_copy, deployment.blob_dir)
    await asyncio.to_thread(deployment.migrate)
    rows = await _rows(deployment.env["DATABASE_URL"])
    assert {doc_id: rows[doc_id][0] for doc_id in ids} == dict.fromkeys(ids, "indexed")
    # The blob root's marker came back with the blobs: the reconciler takes
    # the restored folder for this deployment's, and finds nothing to remove.
    reconcile = await asyncio.to_thread(
        subprocess.run,
        [str(RAG), "reconcile"],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reconcile.returncode == 0, reconcile.stderr[-3000:]
    assert "0 orphan blobs, 0 documents without blob" in reconcile.stdout
    gateway = deployment.start(overrides=model)
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await _log_in(client, user.username, user.id)
        # The rows are back but not the vectors: nothing to cite yet.
        assert cited_documents(await ask(client, user, QUESTION)) == set()

        code, output = _finish(deployment.reindex("--all"))
        assert code == 0, output
        assert f"{len(ids)}/{len(ids)} documents done" in output
        print(f"\nrestore reindex: {_rates(output)} (documents/s, chunks/s)\n{output}")
        # The vectors were lost: every chunk was embedded again.
        assert _stored_by_reindex(deployment) == {d: (rows[d][1], 0) for d in ids}

        assert cited_documents(await ask(client, user, QUESTION)) == cited
    per_doc = await vectors_per_document(stack_env["CHROMA_URL"], ids)
    rows = await _rows(deployment.env["DATABASE_URL"])
    assert dict(per_doc) == {doc_id: rows[doc_id][1] for doc_id in ids}


# A revision older than head: a backup taken by an earlier release.
OLDER_REVISION = "0005"
BACKUP = "20260101T020000Z"


def _documented_restore() -> str:
    """docs/backup.md's restore, the script run in the rag-restore pod."""
    text = (ROOT / "docs" / "backup.md").read_text()
    start = text.index("kubectl exec rag-restore -- env B=")
    script = text[text.index("'", start) + 1 :]
    return script[: script.index("'\nkubectl delete pod rag-restore")]


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _fetch(url: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(query)]
    finally:
        await conn.close()


async def test_an_older_dump_restores_into_an_empty_database_and_migrates(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """docs/backup.md's commands, run as written (paths aside): the database
    of a newer release is set aside, an older release's dump goes into a new,
    empty database, and the migrations bring it to this release's schema.
    ``pg_restore --clean`` over the newer schema is what this replaces."""
    name = f"restore_older_{uuid.uuid4().hex[:8]}"
    url = with_database(stack_env["DATABASE_URL"], name)
    aside = f"{name}_before_{BACKUP}"
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head != OLDER_REVISION
    await _execute(stack_env["DATABASE_URL"], f'CREATE DATABASE "{name}"')
    try:
        # The backup, taken by an older release: its schema, a row, a blob.
        await asyncio.to_thread(upgrade, url, OLDER_REVISION)
        await _execute(
            url, "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'from-the-backup')"
        )
        backups, blobs = tmp_path / "backups", tmp_path / "blobs"
        (backups / BACKUP).mkdir(parents=True)
        blobs.mkdir()
        (blobs / "old.md").write_bytes(b"uploaded before the backup")
        for command in (
            [
                str(postgres_bin() / "pg_dump"),
                "-Fc",
                f"--file={backups / BACKUP / 'rag.dump'}",
                url,
            ],
            ["tar", "-C", str(blobs), "-czf", str(backups / BACKUP / "blobs.tar.gz"), "."],
        ):
            await asyncio.to_thread(subprocess.run, command, check=True, timeout=120)
        # Since then: this release's schema, more rows, another blob.
        await asyncio.to_thread(upgrade, url)
        await _execute(url, "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'later')")
        (blobs / "new.md").write_bytes(b"uploaded after the backup")

        script = (
            _documented_restore()
            .replace("/backups/", f"{backups}/")
            .replace("/var/lib/rag/blobs", str(blobs))
        )
        restored = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euc", script],
            env={
                **os.environ,
                "PATH": f"{postgres_bin()}{os.pathsep}{os.environ['PATH']}",
                "DATABASE_URL": url,
                "B": BACKUP,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr

        # The backup's state, at its own revision, until the migrations run.
        version = "SELECT version_num FROM alembic_version"
        assert await _fetch(url, version) == [OLDER_REVISION]
        assert await _fetch(url, "SELECT name FROM tenants") == ["from-the-backup"]
        assert sorted(p.name for p in blobs.iterdir()) == ["old.md"]
        await asyncio.to_thread(upgrade, url)
        assert await _fetch(url, version) == [head]
        assert await _fetch(url, "SELECT name FROM tenants") == ["from-the-backup"]
        # The database it replaced is kept aside, untouched.
        aside_url = with_database(stack_env["DATABASE_URL"], aside)
        assert await _fetch(aside_url, version) == [head]
        assert sorted(await _fetch(aside_url, "SELECT name FROM tenants")) == [
            "from-the-backup",
            "later",
        ]
    finally:
        for database in (name, aside):
            await _execute(
                stack_env["DATABASE_URL"], f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
            )


async def test_a_new_embedding_model_is_filled_by_reindex_before_queries_switch(
    deployment: Deployment, stack_env: dict[str, str]
) -> None:
    old_dim, new_dim = random.sample(range(1000, 4000), 2)
    old = {"EMBEDDING_PROVIDER": "hashing", "EMBEDDING_DIM": str(old_dim)}
    new = {**old, "EMBEDDING_DIM": str(new_dim)}
    gateway = deployment.start(overrides=old)
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        fire = await upload(client, user, "fire-drill.md", FIRE)
        ids = [fire] + [await upload(client, user, n, body) for n, body in OTHERS.items()]
        for doc_id in ids:
            assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
        chunks = {d: c for d, (_, c, _) in (await _rows(deployment.env["DATABASE_URL"])).items()}

        # The ingest workers move to the new model; the query worker has not.
        deployment.restart("ingest", new)
        code, output = _finish(deployment.reindex("--all"))
        assert code == 0, output
        assert f"{len(ids)}/{len(ids)} documents done" in output
        # Both collections hold every chunk once: the old one was left alone.
        per_doc = await vectors_per_document(stack_env["CHROMA_URL"], ids)
        assert dict(per_doc) == {d: 2 * chunks[d] for d in ids}
        assert fire in cited_documents(await ask(client, user, QUESTION))

        # The switch: the query worker on the new model finds the same.
        deployment.restart("query", new)
        assert fire in cited_documents(await ask(client, user, QUESTION))


def _filler(n: int) -> bytes:
    """A document of several chunks about nothing in particular."""
    rng = random.Random(n)
    words = ["ledger", "invoice", "quarter", "supplier", "budget", "audit", "forecast", "vendor"]
    paragraphs = [" ".join(rng.choice(words) for _ in range(120)) + "." for _ in range(6)]
    return f"# Report {n}\n\n".encode() + "\n\n".join(paragraphs).encode()


@pytest.mark.timeout(600)
async def test_reindex_while_serving_keeps_answering_and_touches_only_its_tenant(
    deployment: Deployment, stack_env: dict[str, str]
) -> None:
    gateway = deployment.start(ingest_workers=2)
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
        fire = await upload(client, alice, "fire-drill.md", FIRE)
        alices = [fire] + [await upload(client, alice, f"r{n}.md", _filler(n)) for n in range(40)]
        bobs = [await upload(client, bob, f"b{n}.md", _filler(100 + n)) for n in range(4)]
        for user, doc_ids in ((alice, alices), (bob, bobs)):
            for doc_id in doc_ids:
                assert (await wait_for_status(client, user, doc_id, 180))["status"] == "indexed"
        before = await _rows(deployment.env["DATABASE_URL"])

        # Alice keeps asking while her tenant is re-indexed.
        process = deployment.reindex("--tenant", f"self-{alice.tenant_id}")
        answers: list[list[Any]] = []
        asked_at: list[float] = []
        started = time.monotonic()
        while process.poll() is None:
            asked_at.append(round(time.monotonic() - started, 3))
            answers.append(await ask(client, alice, QUESTION))
        code, output = _finish(process)
        assert code == 0, output
        assert f"{len(alices)}/{len(alices)} documents done" in output
        print(
            f"\nserving reindex: {_rates(output)} (documents/s, chunks/s), "
            f"{len(answers)} answers meanwhile\n{output}"
        )
        assert len(answers) >= 2, output
        for n, (events, at) in enumerate(zip(answers, asked_at, strict=True)):
            kinds = [e.event for e in events]
            assert "error" not in kinds and kinds[-1] == "done", kinds
            # Everything a miss needs to be explained: which answer, when, what it found.
            assert fire in cited_documents(events), (n, len(answers), at, _answered(events))

    after = await _rows(deployment.env["DATABASE_URL"])
    # Bob's rows were not touched; each of Alice's went round again.
    assert {d: after[d] for d in bobs} == {d: before[d] for d in bobs}
    for doc_id in alices:
        assert after[doc_id][:2] == ("indexed", before[doc_id][1])
        assert after[doc_id][2] > before[doc_id][2]
    reindexed = _reindexed_documents(deployment)
    assert reindexed == set(alices)
    # The collection was intact: every vector was kept, none embedded again.
    assert _stored_by_reindex(deployment) == {d: (0, after[d][1]) for d in alices}
    # One vector per chunk: re-indexing replaced, never duplicated.
    per_doc = await vectors_per_document(stack_env["CHROMA_URL"], alices + bobs)
    assert dict(per_doc) == {d: after[d][1] for d in alices + bobs}


def _answered(events: list[Any]) -> dict[str, Any]:
    sources = next((e.data for e in events if e.event == "sources"), None)
    return {
        "events": [e.event for e in events],
        "sources": sources and [(s["filename"], s["score"]) for s in sources],
        "answer": answer_text(events),
    }


def _reindexed_documents(deployment: Deployment) -> set[str]:
    """The documents the ingest workers logged as indexed for a re-index."""
    found = set()
    for component in deployment.running:
        for line in component.log().splitlines():
            if "reindex-" in line and "Document indexed" in line:
                match = re.search(r"document_id[\"=: ]+([0-9a-f-]{36})", line)
                assert match, line
                found.add(match[1])
    return found


def _stored_by_reindex(deployment: Deployment) -> dict[str, tuple[int, int]]:
    """(chunks embedded, chunks kept) per document, as a re-index's ingest
    workers logged them."""
    found = {}
    for component in deployment.running:
        for line in component.log().splitlines():
            if "reindex-" in line and "Chunks stored" in line:
                entry = json.loads(line)
                found[entry["document_id"]] = (entry["embedded"], entry["kept"])
    return found


async def test_reindex_reports_failures_and_unknown_tenants(deployment: Deployment) -> None:
    gateway = deployment.start()
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        kept = await upload(client, user, "fire-drill.md", FIRE)
        lost = await upload(client, user, "badges.md", OTHERS["badges.md"])
        for doc_id in (kept, lost):
            assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
        # A restore that missed a blob: that document cannot be rebuilt.
        (blob,) = [p for p in deployment.blob_dir.rglob("*") if p.is_file() and _holds(p, b"badge")]
        blob.unlink()
        started = time.monotonic()
        code, output = _finish(deployment.reindex("--tenant", f"self-{user.tenant_id}"))
        assert code == 1, output
        assert "2/2 documents done (1 failed)" in output
        assert f"failed {lost}: " in output and "missing from the blob store" in output
        assert time.monotonic() - started < 120
        assert (await wait_for_status(client, user, kept))["status"] == "indexed"
        assert (await wait_for_status(client, user, lost))["status"] == "failed"

        # --no-wait queues what is indexed (not the failed one) and returns.
        before = await _rows(deployment.env["DATABASE_URL"])
        code, output = _finish(
            deployment.reindex("--tenant", f"self-{user.tenant_id}", "--no-wait")
        )
        queued = "reindex: queued 1 documents; the ingest workers index them"
        assert (code, output.splitlines()[-1]) == (0, queued), output
        after = await _reindexed(deployment, kept, before[kept][2])
        assert after[lost] == before[lost]

    code, output = _finish(deployment.reindex("--tenant", "no-such-tenant"))
    assert (code, output.strip()) == (2, "rag reindex: no tenant named 'no-such-tenant'")


async def _reindexed(deployment: Deployment, doc_id: str, since: Any) -> dict[str, Any]:
    """The rows once ``doc_id`` is indexed again, after ``since``."""
    async with asyncio.timeout(60):
        while True:
            rows = await _rows(deployment.env["DATABASE_URL"])
            if rows[doc_id][0] == "indexed" and rows[doc_id][2] > since:
                return rows
            await asyncio.sleep(0.2)


def _holds(path: Path, text: bytes) -> bool:
    return text in path.read_bytes()
