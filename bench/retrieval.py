"""#6 retrieval: p50/p95 latency of hybrid retrieval (dense in Chroma + BM25
in PostgreSQL, fused) for one tenant holding 10k and then 100k chunks, with
100 tenants in the store.

The chunks are written straight through the shared store code
(``VectorStore.upsert``, ``LexicalIndex.replace_document``, document rows by
``shared.storage.documents.insert``) rather than through ingestion, so seeding takes
minutes, not hours; they are embedded with the ``hashing`` embedder (the
benchmark is about the stores, not the model). Queries are timed through the
query worker's own ``Retriever``, with the worker's candidate count, each
question new (no embedding cache hit). Dense and lexical alone are timed too:
they show which half bounds the fused figure.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any

from bench.common import Context
from bench.corpus import TextMaker
from bench.inprocess import log_to_file, settings_from
from bench.results import Figure, summary_ms
from gateway.identity import users
from query.retrieval import Owner, QueryEmbeddings, Retriever
from shared.contracts.events import utcnow
from shared.runtime.clients import Clients, open_clients
from shared.storage import documents
from shared.storage.lexical import IndexedChunk
from shared.storage.vectorstore import Chunk

TENANTS = 100
CHUNKS_PER_DOCUMENT = 250
WORDS_PER_CHUNK = 80
TARGET_P95_MS = 50.0


async def _tenant(clients: Clients) -> Owner:
    name = f"bench-retrieval-{uuid.uuid4().hex[:10]}"
    user = await users.create(clients.pool, name, "not-a-password-hash")
    return Owner(user.tenant_id, user.id)


async def _document(clients: Clients, owner: Owner, maker: TextMaker, n: int) -> None:
    doc_id = uuid.uuid4()
    now = utcnow()
    filename = f"seed-{doc_id.hex[:8]}.txt"
    await documents.insert(
        clients.pool,
        documents.Document(
            id=doc_id,
            tenant_id=owner.tenant_id,
            user_id=owner.user_id,
            filename=filename,
            content_type="text/plain",
            size_bytes=0,
            sha256="0" * 64,
            blob_key=f"seed/{doc_id}",
            status="indexed",
            chunks=n,
            error=None,
            created_at=now,
            updated_at=now,
        ),
    )
    texts = [maker.passage(WORDS_PER_CHUNK) for _ in range(n)]
    ids = [
        f"{doc_id}:{i}:{hashlib.sha256(t.encode()).hexdigest()[:16]}" for i, t in enumerate(texts)
    ]
    embedder = clients.require_embedder()
    vectors = await embedder.embed_documents(texts)
    await clients.vectors.upsert(
        [
            Chunk(
                id=ids[i],
                tenant_id=owner.tenant_id,
                user_id=owner.user_id,
                document_id=doc_id,
                filename=filename,
                chunk_index=i,
                text=t,
                embedding=vectors[i],
            )
            for i, t in enumerate(texts)
        ]
    )
    await clients.lexical.replace_document(
        owner.tenant_id,
        owner.user_id,
        doc_id,
        [IndexedChunk(id=ids[i], chunk_index=i, text=t) for i, t in enumerate(texts)],
    )


async def _seed(clients: Clients, owner: Owner, maker: TextMaker, chunks: int) -> None:
    gate = asyncio.Semaphore(3)

    async def one(n: int) -> None:
        async with gate:
            await _document(clients, owner, maker, n)

    sizes = [CHUNKS_PER_DOCUMENT] * (chunks // CHUNKS_PER_DOCUMENT)
    if chunks % CHUNKS_PER_DOCUMENT:
        sizes.append(chunks % CHUNKS_PER_DOCUMENT)
    await asyncio.gather(*(one(n) for n in sizes))


async def _timed(
    retriever: Retriever, owner: Owner, maker: TextMaker, n: int, k: int
) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"hybrid": [], "dense": [], "lexical": []}
    for _ in range(n):
        for mode in timings:
            question = maker.question()  # a new one each time: no cached embedding
            began = time.perf_counter()
            hits = await retriever.retrieve(owner, question, mode=mode, k=k)  # type: ignore[arg-type]
            timings[mode].append(time.perf_counter() - began)
            if mode == "hybrid" and not hits:
                raise RuntimeError("hybrid retrieval found nothing: the seeding went wrong")
    return {mode: summary_ms(values) for mode, values in timings.items()}


def _figures(size: int, timings: dict[str, Any], details: dict[str, Any]) -> list[Figure]:
    figures = []
    for q in (50, 95):
        at_target = q == 95 and size == 100_000
        figures.append(
            Figure(
                name=f"6. hybrid retrieval p{q}, {size // 1000}k chunks, {TENANTS} tenants",
                target=f"p95 ≤ {TARGET_P95_MS:g} ms at 100k" if q == 95 else "",
                measured=timings["hybrid"][f"p{q}"],
                unit="ms",
                met=timings["hybrid"]["p95"] <= TARGET_P95_MS if at_target else None,
                details=details,
            )
        )
    return figures


async def run(ctx: Context) -> list[Figure]:
    sizes = (10_000,) if ctx.quick else (10_000, 100_000)
    others = ctx.size(1000, 100)
    queries = ctx.size(200, 100)
    figures = []
    with ctx.infra.deployment() as deployment:
        settings = settings_from(deployment.env)
        log_to_file(settings, ctx.infra.log_dir / "retrieval.log")
        async with open_clients(settings, "bench-retrieval") as clients:
            maker = TextMaker(seed=9)
            began = time.perf_counter()
            for _ in range(TENANTS - 1):
                await _seed(clients, await _tenant(clients), maker, others)
            owner = await _tenant(clients)
            embeddings = QueryEmbeddings(clients.require_embedder(), clients.redis, 60)
            retriever = Retriever(embeddings, clients.vectors, clients.lexical, settings.rrf_k)
            k = max(settings.retrieval_top_k, settings.retrieval_candidates)
            seeded = 0
            for size in sizes:
                await _seed(clients, owner, maker, size - seeded)
                seeded = size
                seed_seconds = time.perf_counter() - began
                await _timed(retriever, owner, maker, 10, k)  # warm-up
                timings = await _timed(retriever, owner, maker, queries, k)
                details = {
                    "ms": timings,
                    "k": k,
                    "tenants": TENANTS,
                    "other_tenants_chunks": others,
                    "queries": queries,
                    "seeded_after_s": round(seed_seconds, 1),
                }
                figures += _figures(size, timings, details)
    return figures
