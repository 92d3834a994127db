"""Finding the caller's most relevant chunks: dense (Chroma), lexical (BM25 in
PostgreSQL), or both fused by reciprocal rank.

Both searches filter inside the store's own query on what the caller may
read: the tenant's chunks that are the caller's own, shared with the tenant,
or shared with a group the caller is in (read from PostgreSQL per search).
Fusion only ever sees those. Dense hits are checked once more against the
document rows: a chunk's visibility is a copy of its row's, and a copy left
stale by a failed or racing update must not show an unshared document.
"""

from __future__ import annotations

import asyncio
import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from query.fusion import reciprocal_rank_fusion
from shared.adapters.embedding import Embedder
from shared.config import RetrievalMode
from shared.contracts.labels import Filters
from shared.storage.lexical import LexicalIndex
from shared.storage.vectorstore import Hit, VectorStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Owner:
    tenant_id: UUID
    user_id: UUID


@dataclass
class QueryEmbeddings:
    """Question embeddings, cached in Redis per tenant and model: a repeated
    question costs a round trip instead of a model run. The cache is
    best-effort; Redis being down only costs the model run."""

    embedder: Embedder
    redis: Redis
    ttl_seconds: int

    def _key(self, owner: Owner, text: str) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"rag:qemb:{self.embedder.name}:{self.embedder.dim}:{owner.tenant_id}:{digest}"

    async def embed(self, owner: Owner, text: str) -> list[float]:
        key = self._key(owner, text)
        try:
            cached = await self.redis.get(key)
        except RedisError as exc:
            log.warning("Query embedding cache unavailable", error=type(exc).__name__)
            cached = None
        if isinstance(cached, bytes) and cached:
            return list(array("f", cached))
        vector = await self.embedder.embed_query(text)
        try:
            await self.redis.set(key, array("f", vector).tobytes(), ex=self.ttl_seconds)
        except RedisError as exc:
            log.warning("Query embedding cache unavailable", error=type(exc).__name__)
        return vector


@dataclass
class Retriever:
    embeddings: QueryEmbeddings
    vectors: VectorStore
    lexical: LexicalIndex
    rrf_k: int = 60

    async def dense(
        self,
        owner: Owner,
        text: str,
        k: int,
        document_ids: Sequence[UUID] | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        embedding = await self.embeddings.embed(owner, text)
        # The caller's groups now, from PostgreSQL: never a list sent with the request.
        groups = await self.lexical.group_ids(owner.tenant_id, owner.user_id)
        hits = await self.vectors.search(
            owner.tenant_id,
            owner.user_id,
            embedding,
            k,
            document_ids=document_ids,
            filters=filters,
            groups=groups,
        )
        if not hits:
            return hits
        allowed = await self.lexical.readable(
            owner.tenant_id, owner.user_id, {h.document_id for h in hits}
        )
        return [h for h in hits if h.document_id in allowed]

    async def lexical_search(
        self,
        owner: Owner,
        text: str,
        k: int,
        document_ids: Sequence[UUID] | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        return await self.lexical.search(
            owner.tenant_id, owner.user_id, text, k, document_ids=document_ids, filters=filters
        )

    async def retrieve(
        self,
        owner: Owner,
        question: str,
        *,
        mode: RetrievalMode,
        k: int,
        dense_text: str | None = None,
        document_ids: Sequence[UUID] | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The best ``k`` chunks. ``dense_text`` replaces the question for the
        dense search only (HyDE: a hypothetical answer embeds closer to real
        answers than the question does; BM25 keeps the user's own words)."""
        if mode == "dense":
            return await self.dense(owner, dense_text or question, k, document_ids, filters)
        if mode == "lexical":
            return await self.lexical_search(owner, question, k, document_ids, filters)
        dense, lexical = await asyncio.gather(
            self.dense(owner, dense_text or question, k, document_ids, filters),
            self.lexical_search(owner, question, k, document_ids, filters),
        )
        return reciprocal_rank_fusion([dense, lexical], k=self.rrf_k)[:k]
