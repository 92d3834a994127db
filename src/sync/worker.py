"""The sync worker: take a source that is due, run it under a lease, let
it go, and look again. Each worker runs one source at a time; run more
workers (replicas) to sync more sources at once. Two workers never run one
source together: the lease (``sources.claim``) is taken with ``FOR UPDATE
SKIP LOCKED`` and every write of a run is checked against it."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from uuid import uuid4

import asyncpg
import structlog

from shared.config import Settings
from shared.intake.changes import discard
from shared.runtime.clients import Clients
from shared.runtime.worker import BackgroundJob, run_worker
from shared.storage import documents, sources
from shared.storage.sources import LeaseLost, Outcome, Source
from sync.lease import Lease
from sync.metrics import SYNC_FILES, SYNC_RUN_DURATION, SYNC_RUNS
from sync.run import DEFERRED_RETRY_SECONDS, RunFailed, SourceRun, deletion_audit

log = structlog.get_logger(__name__)
# Errors of the stores a pass needs: logged, and the next poll tries again.
PASS_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def worker_name() -> str:
    """Unique per process, readable in the runs it records."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"


async def sync_forever(clients: Clients, worker: str) -> None:
    settings = clients.settings
    while True:
        try:
            source = await sources.claim(clients.pool, worker, settings.sync_lease_seconds)
            if source is not None:
                await run_source(clients, source, worker)
                continue  # another may be due
        except (*PASS_ERRORS, LeaseLost) as exc:
            log.warning("Sync pass failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(settings.sync_poll_seconds)


async def run_source(clients: Clients, source: Source, worker: str) -> None:
    """Run (or remove) the source this worker holds the lease of, then let
    it go: due again after its interval."""
    seconds = clients.settings.sync_lease_seconds
    next_in: float = source.interval_seconds
    async with Lease(clients.pool, source.id, worker, seconds) as lease:
        if source.removing_at is not None:
            await remove_source(clients, source, worker, lease)
            return
        next_in = await _run(clients, source, worker, lease)
    await sources.release(clients.pool, source.id, worker, next_in)


async def _run(clients: Clients, source: Source, worker: str, lease: Lease) -> float:
    """One run, recorded in ``sync_runs``; when the source is due again."""
    run_id = await sources.start_run(clients.pool, source.id, worker)
    log.info("Sync run started", source_id=str(source.id), run_id=str(run_id), worker=worker)
    run = SourceRun(clients, source, worker, lease, run_id)
    began = time.monotonic()
    outcome: Outcome = "ok"
    error: str | None = None
    try:
        await run.go()
    except RunFailed as exc:
        outcome, error = "failed", str(exc)
    except LeaseLost:
        outcome, error = "interrupted", "the worker lost its lease; another worker took over"
    except Exception as exc:  # a store down, or a bug: this run, not the worker
        log.exception("Sync run failed", source_id=str(source.id))
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
    counts = run.progress.counts
    if outcome == "ok" and counts["failed"]:
        outcome = "partial"
    await sources.finish_run(clients.pool, run_id, outcome, error, counts)
    SYNC_RUNS.labels(outcome).inc()
    SYNC_RUN_DURATION.observe(time.monotonic() - began)
    for change, count in counts.items():
        SYNC_FILES.labels(change).inc(count)
    log.info(
        "Sync run finished",
        source_id=str(source.id),
        run_id=str(run_id),
        worker=worker,
        outcome=outcome,
        error=error,
        **counts,
    )
    if counts["deferred"]:
        return min(float(source.interval_seconds), DEFERRED_RETRY_SECONDS)
    return float(source.interval_seconds)


async def remove_source(clients: Clients, source: Source, worker: str, lease: Lease) -> None:
    """Delete the source's documents (unless it keeps them), then the
    source; a worker that dies half-way leaves the rest to the next."""
    if not source.keep_documents:
        for relpath, doc_id in await sources.document_ids(clients.pool, source.id):
            lease.check()
            doc = await documents.by_id(clients.pool, doc_id)
            if doc is not None:
                audited = deletion_audit(source, relpath)
                await discard(
                    clients.pool, clients.vectors, clients.blobs, doc, in_transaction=audited
                )
            await sources.drop_file(clients.pool, source.id, worker, relpath)
    await sources.delete(clients.pool, source.id, worker)
    log.info("Source removed", source_id=str(source.id), kept_documents=source.keep_documents)


async def subscribe(clients: Clients) -> list[BackgroundJob]:
    worker = worker_name()
    log.info(
        "Sync worker ready", worker=worker, roots=[str(r) for r in clients.settings.sync_roots]
    )
    return [sync_forever(clients, worker)]


async def run(settings: Settings) -> None:
    await run_worker(settings, "sync", subscribe, embedder=False, consumes=False)
