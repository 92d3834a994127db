"""Ingestion is at-least-once: workers killed mid-document, Postgres down,
garbage on the request topics, a document that fails until an operator
fixes it, a lost request, a document that kills every worker. No accepted
document is lost or indexed twice, and nothing fails for good that would
pass later."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from ingest.release import release_once
from shared.config import Settings
from shared.runtime.clients import open_clients
from tests.faults.conftest import FaultStack
from tests.support.api import User, new_user, stream_chat, upload, wait_for_status
from tests.support.kafka import produce, read_until
from tests.support.processes import Component
from tests.support.stores import vectors_per_document

FAST = {"EMBEDDING_PROVIDER": "hashing", "INGEST_RETRY_MAX_SECONDS": "1"}


def _document(n: int) -> bytes:
    # 2 to 10 chunks (CHUNK_SIZE 800): enough work that a kill lands mid-document.
    sections = [
        f"## Part {s}\n\nMemo {n}, part {s}: " + "ledger entry " * 60
        for s in range((n % 5 + 1) * 2)
    ]
    return f"# Memo {n}\n\n".encode() + "\n\n".join(sections).encode()


async def _upload_many(client: httpx.AsyncClient, user: User, count: int) -> list[str]:
    ids: list[str] = []
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> None:
        async with gate:
            ids.append(await upload(client, user, f"memo-{n}.md", _document(n)))

    await asyncio.gather(*(one(n) for n in range(count)))
    return ids


async def _rows(database_url: str, ids: list[str]) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT d.id, d.status, d.chunks, d.error, d.attempts,"
            " (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS lexical"
            " FROM documents d WHERE d.id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in ids],
        )
    finally:
        await conn.close()


async def _wait_settled(database_url: str, ids: list[str], timeout: float) -> list[asyncpg.Record]:
    """The rows once none is queued or processing (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await _rows(database_url, ids)
        settled = all(r["status"] in ("indexed", "failed") for r in rows)
        if (settled and len(rows) == len(ids)) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


async def test_a_worker_killed_again_and_again_loses_and_duplicates_nothing(
    fault_stack: FaultStack,
) -> None:
    began = time.monotonic()
    fault_stack.worker("ingest", "ingest-steady", **FAST)
    victim = fault_stack.worker("ingest", "ingest-victim", **FAST)
    gateway = fault_stack.gateway("gateway-kills", **FAST)
    db = fault_stack.env["DATABASE_URL"]
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        uploads = asyncio.create_task(_upload_many(client, user, 300))
        kills = 0
        # Each kill stalls the group for the dead member's session timeout
        # (10 s) before the restarted worker is in: 4 kills fill a minute.
        while kills < 4:
            await asyncio.sleep(1.5)
            victim.kill()
            kills += 1
            victim = await asyncio.to_thread(fault_stack.restart, victim)
        ids = await uploads
        killing = time.monotonic() - began
        rows = await _wait_settled(db, ids, timeout=60)
    vectors = await vectors_per_document(fault_stack.env["CHROMA_URL"], ids)
    indexed = [r for r in rows if r["status"] == "indexed"]
    redelivered = await _redelivered(fault_stack.env, ids)
    print(
        f"injected: {kills} SIGKILLs of one of two ingest workers during 300 uploads"
        f" (over {killing:.0f} s); lost: {300 - len(indexed)} of 300;"
        f" redelivered after a kill: {redelivered}; vectors {sum(vectors.values())}"
        f" for {sum(r['chunks'] for r in rows)} chunks; {time.monotonic() - began:.0f} s"
    )
    assert len(indexed) == 300, Counter(r["status"] for r in rows)
    # A kill landed mid-document: some document was started twice and still
    # ended with one vector per chunk (below). Without one, the test proved
    # nothing about redelivery.
    assert redelivered > 0, "no kill landed while a document was being processed"
    assert sum(vectors.values()) == sum(r["chunks"] for r in rows)
    for row in rows:
        assert vectors[str(row["id"])] == row["chunks"] == row["lexical"] > 0
        assert row["attempts"] == 0  # settled


async def _redelivered(env: dict[str, str], ids: list[str]) -> int:
    """Documents that more than one delivery started processing."""
    events = await read_until(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        f"{env['KAFKA_TOPIC_PREFIX']}.ingest.events",
        lambda msgs: len({m["document_id"] for m in msgs if m["status"] == "indexed"}) >= len(ids),
    )
    starts = Counter(m["document_id"] for m in events if m["status"] == "processing")
    return sum(count > 1 for count in starts.values())


async def test_postgres_down_for_20_seconds_fails_no_document(fault_stack: FaultStack) -> None:
    began = time.monotonic()
    gateway = fault_stack.gateway("gateway-pg-down", **FAST)
    postgres = fault_stack.stack.postgres
    assert postgres is not None
    db = fault_stack.env["DATABASE_URL"]
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        # Queued before any worker runs, so Postgres goes down mid-backlog.
        ids = await _upload_many(client, user, 200)
        worker = fault_stack.worker("ingest", "ingest-pg-down", **FAST)
        await _until_indexed(db, ids, 5)
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(10)
        # SIGTERM mid-retry: the worker leaves at once, its message uncommitted.
        stopping = time.monotonic()
        await asyncio.to_thread(worker.stop)
        stopped_in = time.monotonic() - stopping
        await asyncio.sleep(10)
        await asyncio.to_thread(postgres.start)
        successor = fault_stack.worker("ingest", "ingest-pg-back", **FAST)
        rows = await _wait_settled(db, ids, timeout=40)
    statuses = Counter(r["status"] for r in rows)
    retries = worker.log().count("Retrying message")
    print(
        f"injected: Postgres stopped for 20 s during 200 documents, the worker SIGTERMed"
        f" 10 s in (gone in {stopped_in:.1f} s) and replaced once Postgres was back;"
        f" {retries} retries logged;"
        f" lost: {200 - statuses['indexed']} of 200 ({dict(statuses)});"
        f" {time.monotonic() - began:.0f} s"
    )
    assert statuses == {"indexed": 200}
    assert retries > 0
    assert stopped_in < 5 and worker.process.returncode == 0
    for component in (worker, successor):
        assert "Message dead-lettered" not in component.log()


async def _until_indexed(database_url: str, ids: list[str], count: int) -> None:
    for _ in range(600):
        if sum(r["status"] == "indexed" for r in await _rows(database_url, ids)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} documents indexed")


def _garbage(marker: str) -> dict[str, bytes]:
    return {
        "invalid_message": f'{{"oops": "{marker}", '.encode(),  # not JSON at all
        "wrong_schema": json.dumps({"type": "ingest.request", "marker": marker}).encode(),
        "message_too_large": json.dumps({"marker": marker, "pad": "x" * 400_000}).encode(),
    }


async def test_garbage_on_every_request_topic_is_dead_lettered_and_workers_keep_serving(
    fault_stack: FaultStack,
) -> None:
    began = time.monotonic()
    fault_stack.worker("ingest", "ingest-garbage", **FAST)
    fault_stack.worker("query", "query-garbage", **FAST)
    gateway = fault_stack.gateway("gateway-garbage", **FAST)
    bootstrap, prefix = (
        fault_stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        fault_stack.env["KAFKA_TOPIC_PREFIX"],
    )
    marker = uuid.uuid4().hex
    reasons: dict[str, list[str]] = {}
    for topic in (f"{prefix}.ingest.requests", f"{prefix}.chat.requests"):
        for body in _garbage(marker).values():
            await produce(bootstrap, topic, body, key=b"garbage")
        letters = await read_until(
            bootstrap,
            f"{topic}.dlq",
            lambda msgs: sum(marker in m["payload"] for m in msgs) >= 3,
            timeout=30,
        )
        mine = [m for m in letters if marker in m["payload"]]
        assert all(m["source_topic"] == topic and m["detail"] for m in mine)
        reasons[topic] = sorted(m["reason"] for m in mine)
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        doc = await upload(client, user, "after.md", b"# After\n\nThe vault code is 4711.\n")
        status = (await wait_for_status(client, user, doc, timeout=30))["status"]
        _, events = await stream_chat(client, user, {"message": "What is the vault code?"})
    print(
        f"injected: 3 bad messages (not JSON, wrong schema, 400 kB) on each of 2 request topics;"
        f" dead-lettered: {sum(map(len, reasons.values()))} of 6; after them: upload {status},"
        f" chat {events[-1].event if events else 'no events'}; {time.monotonic() - began:.0f} s"
    )
    expected = ["invalid_message", "invalid_message", "message_too_large"]
    assert all(found == expected for found in reasons.values()), reasons
    assert status == "indexed"
    assert events and events[-1].event == "done"


def _rag(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ragstream", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def _document_row(database_url: str, doc_id: str) -> asyncpg.Record:
    [row] = await _rows(database_url, [doc_id])
    return row


async def test_dlq_replay_after_a_fix_indexes_the_document_once(fault_stack: FaultStack) -> None:
    began = time.monotonic()
    gateway = fault_stack.gateway("gateway-dlq", **FAST)
    db, env = fault_stack.env["DATABASE_URL"], fault_stack.env
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        doc_id = await upload(client, user, "restored.md", b"# Restored\n\nBack from backup.\n")
        conn = await asyncpg.connect(db)
        blob_key = await conn.fetchval(
            "SELECT blob_key FROM documents WHERE id=$1", uuid.UUID(doc_id)
        )
        await conn.close()
        blob = Path(env["BLOB_DIR"]) / blob_key
        aside = blob.with_name(blob.name + ".aside")
        blob.rename(aside)  # the blob store lost it, for now
        fault_stack.worker("ingest", "ingest-dlq", **FAST)
        failed = await wait_for_status(client, user, doc_id, timeout=30)
        listed = json.loads(await asyncio.to_thread(_rag, env, "dlq", "list", "--json"))
        aside.rename(blob)  # restored from backup
        dry = await asyncio.to_thread(_rag, env, "dlq", "replay", "--dry-run")
        replayed = await asyncio.to_thread(
            _rag, env, "dlq", "replay", "--reason", "unsupported_document"
        )
        indexed = await _wait_indexed(client, user, doc_id)
        again = await asyncio.to_thread(_rag, env, "dlq", "replay")
        pending = await asyncio.to_thread(_rag, env, "dlq", "list")
    print(
        f"injected: blob missing for 1 document; failed with {failed['error']!r};"
        f" {len(listed)} letter listed, replayed after the fix -> {indexed['status']};"
        f" second replay: {again.strip()!r}; lost: {0 if indexed['status'] == 'indexed' else 1}"
        f" of 1; {time.monotonic() - began:.0f} s"
    )
    assert failed["status"] == "failed" and "missing" in failed["error"]
    [letter] = listed
    assert letter["letter"]["reason"] == "unsupported_document"
    assert doc_id in letter["letter"]["payload"]
    assert "would replay 1 letters" in dry
    assert "replayed 1 letters" in replayed
    assert indexed["status"] == "indexed" and indexed["chunks"] == 1
    assert "replayed 0 letters" in again
    assert pending.strip().endswith("0 letters")
    assert (await _document_row(db, doc_id))["lexical"] == 1


async def _wait_indexed(client: httpx.AsyncClient, user: User, doc_id: str) -> dict[str, Any]:
    """The document once it is indexed again (it starts out failed)."""
    async with asyncio.timeout(30):
        while True:
            response = await client.get(f"/api/documents/{doc_id}", headers=user.headers)
            doc: dict[str, Any] = response.json()
            if doc["status"] == "indexed":
                return doc
            await asyncio.sleep(0.2)


async def test_a_lost_request_is_requeued_and_a_poison_document_is_given_up(
    fault_stack: FaultStack,
) -> None:
    began = time.monotonic()
    # A gateway whose requests go where no worker listens; their rows then
    # say they sit on the workers' topic past its end: gone from the log (as
    # after a retention that deleted them unread, or a topic made anew).
    lost_prefix = fault_stack.env["KAFKA_TOPIC_PREFIX"] + "-lost"
    gateway = fault_stack.gateway("gateway-lost", KAFKA_TOPIC_PREFIX=lost_prefix, **FAST)
    db = fault_stack.env["DATABASE_URL"]
    requests_topic = fault_stack.env["KAFKA_TOPIC_PREFIX"] + ".ingest.requests"
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        stuck = await upload(client, user, "stuck.md", b"# Stuck\n\nNobody got the message.\n")
        poison = await upload(client, user, "poison.md", b"# Poison\n\nWorkers died on it.\n")
        conn = await asyncpg.connect(db)
        try:
            # Stuck for an hour; the poison one already had every delivery.
            await conn.execute(
                "UPDATE documents SET updated_at = now() - interval '1 hour',"
                " attempts = CASE WHEN id = $2 THEN 2 ELSE 0 END, status = 'processing',"
                " request_topic = $3, request_partition = 0, request_offset = 1000000000,"
                " released_at = now() - interval '1 hour'"
                " WHERE id = ANY($1::uuid[])",
                [uuid.UUID(stuck), uuid.UUID(poison)],
                uuid.UUID(poison),
                requests_topic,
            )
        finally:
            await conn.close()
        worker: Component = fault_stack.worker(
            "ingest", "ingest-sweeper", INGEST_SWEEP_SECONDS="1", INGEST_MAX_ATTEMPTS="2", **FAST
        )
        docs = {d: await wait_for_status(client, user, d, timeout=30) for d in (stuck, poison)}
    requeued = worker.log().count("Re-queued stuck document")
    print(
        f"injected: 2 requests lost for an hour, one of them a document workers died on twice;"
        f" re-queued {requeued}; stuck one -> {docs[stuck]['status']},"
        f" poison one -> {docs[poison]['status']} ({docs[poison]['error']!r});"
        f" {time.monotonic() - began:.0f} s"
    )
    assert requeued >= 2
    assert docs[stuck]["status"] == "indexed"
    assert docs[poison]["status"] == "failed"
    assert "INGEST_MAX_ATTEMPTS=2" in docs[poison]["error"]
    letters = await read_until(
        fault_stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        f"{fault_stack.env['KAFKA_TOPIC_PREFIX']}.ingest.requests.dlq",
        lambda msgs: any(poison in m["payload"] for m in msgs),
    )
    assert [m["reason"] for m in letters if poison in m["payload"]] == ["too_many_attempts"]


async def test_documents_waiting_behind_a_backlog_are_not_requeued(
    fault_stack: FaultStack,
) -> None:
    """Requests released while no ingest worker reads them, their rows then
    an hour old: waiting, not stuck; each is indexed once. One whose request
    was consumed without an outcome is re-queued, and its readers, who saw
    it ``processing``, are not told ``queued`` again."""
    prefix = fault_stack.env["KAFKA_TOPIC_PREFIX"] + "-backlog"
    env = {"KAFKA_TOPIC_PREFIX": prefix, **FAST}
    gateway = fault_stack.gateway("gateway-backlog", **env)
    db = fault_stack.env["DATABASE_URL"]
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        user = await new_user(client)
        ids = await _upload_many(client, user, 8)
        assert await _release({**fault_stack.env, **env}) == len(ids)
        await _age(db, ids, "queued")
        worker = fault_stack.worker("ingest", "ingest-backlog", INGEST_SWEEP_SECONDS="1", **env)
        rows = await _wait_settled(db, ids, timeout=90)
        assert [r["status"] for r in rows] == ["indexed"] * len(ids)
        await asyncio.sleep(3)  # sweeps after the backlog drained
        assert worker.log().count("Re-queued stuck document") == 0
        # Consumed, then left unsettled (as by a worker that committed past it).
        stuck = ids[0]
        await _age(db, [stuck], "processing")
        assert (await wait_for_status(client, user, stuck, timeout=30))["status"] == "indexed"
    requeues = [line for line in worker.log().splitlines() if "Re-queued stuck document" in line]
    assert len(requeues) == 1 and stuck in requeues[0], requeues
    correlation = json.loads(requeues[0])["correlation_id"]
    events = await read_until(
        fault_stack.env["KAFKA_BOOTSTRAP_SERVERS"],
        f"{prefix}.ingest.events",
        lambda msgs: any(
            m["correlation_id"] == correlation and m["status"] == "indexed" for m in msgs
        ),
    )
    assert [m["status"] for m in events if m["correlation_id"] == correlation] == [
        "processing",
        "indexed",
    ]


async def _release(env: dict[str, str]) -> int:
    """One release pass of the deployment ``env`` describes, from here:
    requests on Kafka with no worker to read them."""
    settings = Settings(**{name.lower(): value for name, value in env.items()})
    async with open_clients(settings, "test-release", embedder=False) as clients:
        await clients.broker.start()
        # As if four workers shared the group: a window of 8, all of them.
        return await release_once(clients, workers=4)


async def _age(database_url: str, ids: list[str], status: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE documents SET status = $2, updated_at = now() - interval '1 hour'"
            " WHERE id = ANY($1::uuid[])",
            [uuid.UUID(i) for i in ids],
            status,
        )
    finally:
        await conn.close()
