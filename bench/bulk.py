"""#9 bulk import (fair ingestion): one tenant imports N documents of about
10 KB (``bulk``: 300 with the ONNX embedder; ``bulk-scale``: 5,000, 1,000 in
``--quick``, with the hashing embedder) while a second tenant
uploads one small note every 2 s; against the same import alone and the
note's time with nothing else queued, measured in the same run. With one
ingest worker, and with two.

Figures: the import's throughput beside the same import alone; the second
tenant's time from upload to ``indexed`` (p50/p95) beside an idle system's;
documents re-queued by the sweeper although they were only waiting
(``INGEST_STUCK_SECONDS`` 15, to see at this size what the default 900 s does
to a multi-hour import); indexings beyond one per document; worker RSS.

The measuring client stays light, as it shares the machine with the worker:
a note's wait is read from its own row (``GET /api/documents/{id}``), and
the import's end from the list every ``IMPORT_POLL_SECONDS``.
``BENCH_BULK_WORKERS`` (default ``1,2``) picks the worker counts run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import Counter
from contextlib import suppress
from typing import Any

import httpx

from bench.client import Account, sign_up, upload, wait_indexed, wait_one_indexed
from bench.common import Context
from bench.corpus import TextMaker
from bench.results import Figure
from bench.stack import Deployment, Proc

NOTE_EVERY_SECONDS = 2.0
IDLE_NOTES = 5
UPLOADS_AT_ONCE = 16
IMPORT_POLL_SECONDS = 0.5


def _documents(n: int) -> list[tuple[str, bytes]]:
    maker = TextMaker(seed=9)
    return [(f"archive-{i}.txt", maker.document(paragraphs=14).encode()) for i in range(n)]


async def _note(http: httpx.AsyncClient, account: Account, n: int) -> float:
    """Seconds from one small note's upload to its ``indexed``."""
    began = time.perf_counter()
    doc_id = await upload(http, account, f"note-{n}.txt", f"Note {n}: the canteen opens.".encode())
    await wait_one_indexed(http, account, doc_id, seconds=3600)
    return time.perf_counter() - began


async def _notes_until(
    http: httpx.AsyncClient, account: Account, done: asyncio.Event, waits: list[float]
) -> None:
    n = 0
    while not done.is_set():
        waits.append(await _note(http, account, n))
        n += 1
        with suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), NOTE_EVERY_SECONDS)


async def _import(gateway: Proc, docs: list[tuple[str, bytes]], *, other: bool) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=600) as http:
        bulk = await sign_up(http, "bulk")
        small = await sign_up(http, "small")
        waits: list[float] = []
        done = asyncio.Event()
        gate = asyncio.Semaphore(UPLOADS_AT_ONCE)

        async def one(name: str, data: bytes) -> str:
            async with gate:
                return await upload(http, bulk, name, data)

        began = time.perf_counter()
        ids = await asyncio.gather(*(one(n, d) for n, d in docs))
        notes = asyncio.create_task(_notes_until(http, small, done, waits)) if other else None
        await wait_indexed(http, bulk, list(ids), seconds=4 * 3600, every=IMPORT_POLL_SECONDS)
        seconds = time.perf_counter() - began
        done.set()
        if notes is not None:
            await notes
    return {"seconds": round(seconds, 1), "docs_per_s": len(docs) / seconds, "waits": waits}


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def _worker_counts(workers: list[Proc]) -> dict[str, Any]:
    indexed: Counter[str] = Counter()
    requeued: list[dict[str, Any]] = []
    for worker in workers:
        for line in worker.log().splitlines():
            if "Re-queued stuck document" in line:
                with suppress(ValueError):
                    requeued.append(json.loads(line))
            elif '"Document indexed"' in line:
                with suppress(ValueError, KeyError):
                    indexed[json.loads(line)["document_id"]] += 1
    return {
        "requeued": len(requeued),
        # Which were, and in what state: kept for a run that finds one.
        "requeued_lines": requeued,
        "extra_indexings": sum(indexed.values()) - len(indexed),
        "rss_mb": round(max(w.rss_kb() for w in workers) / 1024),
    }


async def _lane(
    deployment: Deployment, docs: list[tuple[str, bytes]], workers: int
) -> dict[str, Any]:
    gateway = deployment.gateway()
    procs = [deployment.worker("ingest") for _ in range(workers)]
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=600) as http:
        idle = await sign_up(http, "idle")
        idle_waits = [await _note(http, idle, n) for n in range(IDLE_NOTES)]
    alone = await _import(gateway, docs, other=False)
    shared = await _import(gateway, docs, other=True)
    return {"alone": alone, "shared": shared, "idle_waits": idle_waits, **_worker_counts(procs)}


def _figures(label: str, n: int, lane: dict[str, Any]) -> list[Figure]:
    alone, shared = lane["alone"], lane["shared"]
    waits, idle = shared["waits"], lane["idle_waits"]
    details = {"documents": n, **lane}
    return [
        Figure(
            name=f"9. import throughput with another tenant active, {label}",
            target="≥ 0.95 x the import alone",
            measured=round(shared["docs_per_s"], 2),
            unit="docs/s",
            baseline=round(alone["docs_per_s"], 2),
            baseline_label="the same import alone",
            met=shared["docs_per_s"] >= 0.95 * alone["docs_per_s"],
            details=details,
        ),
        Figure(
            name=f"9. another tenant's note during a {n}-document import, p95 to indexed, {label}",
            target="≤ 5 s",
            measured=round(_quantile(waits, 0.95), 1),
            unit="s",
            baseline=round(_quantile(idle, 0.95), 2),
            baseline_label="the same note, nothing queued",
            met=_quantile(waits, 0.95) <= 5,
            details={"p50_s": round(_quantile(waits, 0.5), 1), "notes": len(waits)},
        ),
        Figure(
            name=f"9. re-queues of documents only waiting, {label}",
            target="0",
            measured=lane["requeued"],
            unit="re-queues",
            met=lane["requeued"] == 0,
            details={"extra_indexings": lane["extra_indexings"], "rss_mb": lane["rss_mb"]},
        ),
    ]


async def run(ctx: Context) -> list[Figure]:
    """With the real embedder, at a size this machine indexes in minutes
    (about a document a second): 300 documents in both runs."""
    return await _lanes(ctx, "onnx", 300)


async def run_at_scale(ctx: Context) -> list[Figure]:
    """The scheduler at the issue's scale (5,000 documents; 1,000 in
    ``--quick``) with the hashing embedder: 5,000 documents with ONNX take
    over an hour per import here."""
    return await _lanes(ctx, "hashing", ctx.size(5000, 1000))


async def _lanes(ctx: Context, embedder: str, count: int) -> list[Figure]:
    docs = _documents(count)
    figures: list[Figure] = []
    for workers in _worker_counts_to_run():
        settings = {
            "EMBEDDING_PROVIDER": embedder,
            "INGEST_STUCK_SECONDS": "15",
            "INGEST_SWEEP_SECONDS": "5",
        }
        with ctx.infra.deployment(**settings) as deployment:
            lane = await _lane(deployment, docs, workers)
        label = f"{workers} ingest worker{'s' if workers > 1 else ''}, {embedder}"
        figures += _figures(label, count, lane)
    return figures


def _worker_counts_to_run() -> list[int]:
    return [int(n) for n in os.environ.get("BENCH_BULK_WORKERS", "1,2").split(",")]
