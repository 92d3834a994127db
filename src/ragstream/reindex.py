"""``rag reindex``: rebuild the vector index and the BM25 rows of indexed
documents from what is kept for good, the document rows and the blob store.

The vectors are derived data (DESIGN.md: "the vector index can be rebuilt"):
after a lost Chroma volume, a restore from backup, or a change of embedding
model, every indexed document is sent through the ingest pipeline again. A
re-index is exactly an ingest of an unchanged document, so it rides the
ordinary ``IngestRequest``: no new message and no new worker code. The
worker upserts chunks under ids derived from (document, index, text), so the
old vectors are overwritten in place, chunks that no longer exist are deleted
only after the new ones are stored, and the BM25 rows are replaced in one
transaction: the document stays searchable throughout. Its messages are
recognised in the logs by their correlation id, ``reindex-<run>-<n>``.

Each document's row goes ``indexed`` -> ``queued`` (waiting for release, as
bulk work) in the same transaction as its ``queued`` status is published (a
failed publish leaves it ``indexed``); the ingest workers' releasers publish
its request, after the tenant's interactive uploads and in turns with other
tenants, then a worker takes it through ``processing`` back to ``indexed``
(or ``failed``): the rows are the progress. Only a window of documents is
queued at a time, so the re-index holds few row locks at once.

Each embedding model has its own Chroma collections, one per tenant
(``shared.storage.vectorstore``): ingest workers started with a new model fill
the new ones while query workers still on the old model search the old ones;
moving the query workers to the new model is the switch (docs/backup.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from shared.config import Settings
from shared.contracts.topics import Topics
from shared.intake import queued_status
from shared.runtime.kafka import create_broker, publish
from shared.storage import documents, ingest_queue
from shared.storage.db import create_pool

# Documents queued at a time while waiting (with --no-wait, all of them).
WINDOW = 64
POLL_SECONDS = 0.5
PRINT_SECONDS = 2.0
# No document settled for this long: the ingest workers are down or stuck.
STALL_SECONDS = 900.0


@dataclass
class Progress:
    total: int
    queued: list[UUID] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    gone: int = 0  # queued, then deleted by their owner
    skipped: int = 0  # no longer indexed when their turn came: deleted, or re-uploaded
    chunks: int = 0

    @property
    def in_flight(self) -> int:
        return len(self.queued) - self.done - self.failed - self.gone

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.gone + self.skipped

    def line(self) -> str:
        extra = [f"{self.failed} failed"] if self.failed else []
        left = self.gone + self.skipped
        extra += [f"{left} deleted or changed meanwhile"] if left else []
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"reindex: {self.settled}/{self.total} documents done{tail}"


def run(
    tenant: str | None,
    wait: bool,
    *,
    window: int = WINDOW,
    stall_seconds: float = STALL_SECONDS,
) -> int:
    """Re-index the indexed documents of the tenant named ``tenant`` (``None``:
    of every tenant). ``wait``: follow them to the end, printing progress,
    and exit 1 if any failed; otherwise queue them all and return."""
    settings = Settings()
    return asyncio.run(_run(settings, tenant, wait, window, stall_seconds))


async def _run(
    settings: Settings, tenant: str | None, wait: bool, window: int, stall_seconds: float
) -> int:
    pool = await create_pool(settings)
    broker = create_broker(settings, client_id="rag-reindex")
    try:
        tenant_id = await _tenant_id(pool, tenant)
        if tenant is not None and tenant_id is None:
            print(f"rag reindex: no tenant named {tenant!r}")
            return 2
        await broker.start()
        ids = await documents.indexed_ids(pool, tenant_id)
        job = _Job(pool, broker, Topics.from_prefix(settings.kafka_topic_prefix))
        scope = f"tenant {tenant!r}" if tenant else "all tenants"
        print(f"reindex: {len(ids)} indexed documents of {scope}")
        if not wait:
            await job.queue_all(ids, window)
            print(f"reindex: queued {len(ids)} documents; the ingest workers index them")
            return 0
        return await job.follow(ids, window, stall_seconds)
    except KafkaError as exc:
        # The failed transaction's documents are still indexed; those queued
        # before it are indexed by the workers. Running it again redoes all.
        print(f"rag reindex: cannot publish to Kafka: {type(exc).__name__}: {exc}")
        return 1
    finally:
        await broker.stop()
        await pool.close()


async def _tenant_id(pool: asyncpg.Pool, name: str | None) -> UUID | None:
    if name is None:
        return None
    found: UUID | None = await pool.fetchval("SELECT id FROM tenants WHERE name = $1", name)
    return found


@dataclass
class _Ticker:
    """A progress line per change, at most every ``PRINT_SECONDS`` (and the
    last): a large corpus would otherwise print a line per document."""

    shown: str = ""
    printed: float = float("-inf")

    def show(self, progress: Progress, now: float) -> None:
        line = progress.line()
        finished = progress.settled >= progress.total
        if line != self.shown and (finished or now - self.printed >= PRINT_SECONDS):
            self.shown, self.printed = line, now
            print(line, flush=True)


@dataclass
class _Job:
    pool: asyncpg.Pool
    broker: KafkaBroker  # started
    topics: Topics
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    async def follow(self, ids: list[UUID], window: int, stall_seconds: float) -> int:
        """Keep ``window`` documents in flight until every one has settled."""
        progress, ticker = Progress(len(ids)), _Ticker()
        started = last_change = time.monotonic()
        while progress.settled < progress.total:
            room = window - progress.in_flight
            cursor = len(progress.queued)
            if room > 0 and cursor < len(ids):
                await self.queue(ids[cursor : cursor + room], progress)
            before = progress.settled
            await self._poll(progress)
            now = time.monotonic()
            if progress.settled != before:
                last_change = now
            elif now - last_change > stall_seconds:
                print(
                    f"{progress.line()}; nothing settled for {stall_seconds:.0f} s:"
                    " are the ingest workers running? Queued documents stay queued"
                    " and are indexed when they are."
                )
                return 1
            ticker.show(progress, now)
            if progress.settled < progress.total:
                await asyncio.sleep(POLL_SECONDS)
        await self._summary(progress, time.monotonic() - started)
        return 1 if progress.failed else 0

    async def queue(self, ids: list[UUID], progress: Progress) -> None:
        """Make these documents wait for release again, as bulk work, each
        announced ``queued`` before its transaction commits (so before any
        releaser can see it): a failed announcement leaves them ``indexed``.
        A document no longer indexed is skipped: deleted, or already being
        ingested."""
        first = len(progress.queued) + progress.skipped
        cids = [f"reindex-{self.run_id}-{n}" for n in range(first, first + len(ids))]
        async with self.pool.acquire() as conn, conn.transaction():
            docs = await ingest_queue.wait_again(conn, ids, cids, self.topics.ingest_requests)
            by_id = dict(zip(ids, cids, strict=True))
            for doc in docs:
                event = queued_status(doc, by_id[doc.id])
                await publish(self.broker, self.topics.ingest_events, event, key=doc.id)
        progress.queued += [doc.id for doc in docs]
        progress.skipped += len(ids) - len(docs)

    async def queue_all(self, ids: list[UUID], window: int) -> None:
        """Queue every document, a window per transaction: no transaction
        holds the whole corpus's row locks."""
        progress = Progress(len(ids))
        for start in range(0, len(ids), window):
            await self.queue(ids[start : start + window], progress)

    async def _poll(self, progress: Progress) -> None:
        tally = await documents.tally(self.pool, progress.queued)
        progress.done = tally.counts.get("indexed", 0)
        progress.chunks = tally.indexed_chunks
        progress.failed = tally.counts.get("failed", 0)
        progress.gone = len(progress.queued) - sum(tally.counts.values())

    async def _summary(self, progress: Progress, seconds: float) -> None:
        seconds = max(seconds, 1e-6)
        print(
            f"reindex: {progress.done} documents ({progress.chunks} chunks) in {seconds:.1f} s:"
            f" {progress.done / seconds:.2f} documents/s,"
            f" {progress.chunks / seconds:.1f} chunks/s"
        )
        for doc_id, error in await documents.failures(self.pool, progress.queued):
            print(f"reindex: failed {doc_id}: {error}")
