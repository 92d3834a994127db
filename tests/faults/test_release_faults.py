"""Fair ingestion's releaser killed mid-release (SIGKILL while it holds the
rows it picked and its requests are on their way to Kafka): the documents
stay waiting in PostgreSQL, another worker releases them, and every one is
indexed, once in the index."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import asyncpg
import httpx

from tests.faults.conftest import FaultStack
from tests.support.api import new_user, upload
from tests.support.stores import vectors_per_document

FAST = {"EMBEDDING_PROVIDER": "hashing", "INGEST_RETRY_MAX_SECONDS": "1"}
# Every pass takes this lock first (shared.storage.ingest_queue).
PASS_LOCK = "hashtextextended('ingest-release', 0)"


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process group stopped (SIGSTOP) until the block ends: a broker
    that neither answers nor closes its connections."""
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


async def _wait_for_log(log: Callable[[], str], line: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while line not in log():
        assert time.monotonic() < deadline, f"no {line!r} in the log"
        await asyncio.sleep(0.2)


async def _held_by_a_pass(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> int:
    """How many of ``ids`` a release pass holds now (0 when none is running)."""
    async with conn.transaction():
        if await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({PASS_LOCK})"):
            return 0
        free = await conn.fetch(
            "SELECT id FROM documents WHERE id = ANY($1::uuid[]) FOR UPDATE SKIP LOCKED", ids
        )
    return len(ids) - len(free)


async def test_a_releaser_killed_mid_release_loses_nothing(fault_stack: FaultStack) -> None:
    began = time.monotonic()
    env = {**FAST, "INGEST_WINDOW_PER_WORKER": "3"}
    releaser = fault_stack.worker("ingest", "ingest-releaser", **env)
    gateway = fault_stack.gateway("gateway-release", **env)
    await _wait_for_log(releaser.log, "Worker started")
    kafka = fault_stack.stack.kafka
    assert kafka is not None and kafka.process is not None and kafka.process.pid is not None
    conn = await asyncpg.connect(fault_stack.env["DATABASE_URL"])
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        users = [await new_user(client) for _ in range(3)]
        # Passes wait while the test holds their lock: the uploads wait too.
        blocker = conn.transaction()
        await blocker.start()
        await conn.execute(f"SELECT pg_advisory_xact_lock({PASS_LOCK})")
        ids = [
            uuid.UUID(await upload(client, user, f"memo-{n}.md", f"# Memo {n}\n\nText.".encode()))
            for user in users
            for n in range(4)
        ]
        watcher = await asyncpg.connect(fault_stack.env["DATABASE_URL"])
        try:
            with frozen(kafka.process.pid):
                await blocker.commit()  # the pass goes on, and its publishes hang
                held = 0
                deadline = time.monotonic() + 20
                while held == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    held = await _held_by_a_pass(watcher, ids)
                releaser.kill()
        finally:
            await watcher.close()
        # One tenant's window of 3 each, all picked by the killed pass.
        assert held == 9, f"the releaser held {held} documents when it was killed"
        released = await conn.fetchval(
            "SELECT count(*) FROM documents WHERE id = ANY($1::uuid[]) AND released_at IS NOT NULL",
            ids,
        )
        assert released == 0  # its transaction died with it
        fault_stack.worker("ingest", "ingest-releaser-2", **env)
        rows = await _settled(conn, ids, timeout=90)
    await conn.close()
    vectors = await vectors_per_document(fault_stack.env["CHROMA_URL"], [str(i) for i in ids])
    print(
        f"injected: SIGKILL of the only releaser while it held {held} of {len(ids)} documents"
        f" with the broker frozen; after a new worker: {Counter(r['status'] for r in rows)};"
        f" {time.monotonic() - began:.0f} s"
    )
    assert [r["status"] for r in rows] == ["indexed"] * len(ids)
    for row in rows:
        assert vectors[str(row["id"])] == row["chunks"] > 0


async def _settled(
    conn: asyncpg.Connection, ids: list[uuid.UUID], timeout: float
) -> list[asyncpg.Record]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await conn.fetch(
            "SELECT id, status, chunks FROM documents WHERE id = ANY($1::uuid[])", ids
        )
        if all(r["status"] in ("indexed", "failed") for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)
