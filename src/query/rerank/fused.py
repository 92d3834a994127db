"""A reranker's order fused with the retrieval order it was handed.

A reranker trained on another domain (the bundled cross-encoder learnt from
web search questions) knows things the retrieval does not, and misses things
it knows: on technical documentation its order alone ranks the right page
first less often than hybrid retrieval, while the two orders fused by
reciprocal rank fusion do better than either (docs/quality.md)."""

from __future__ import annotations

from query.fusion import reciprocal_rank_fusion
from query.rerank.base import RERANKER_STAGE, Reranker
from query.retrieval import Owner
from shared.storage.vectorstore import Hit


class RetrievalFused:
    """Ranks by RRF of the incoming order and ``inner``'s order over all the
    candidates; each hit's score becomes its fused score. Equal scores keep
    the incoming order."""

    def __init__(self, inner: Reranker, rrf_k: int) -> None:
        if rrf_k < 1:
            raise ValueError("rrf_k must be at least 1")
        self.name = inner.name
        self._inner = inner
        self._rrf_k = rrf_k

    async def rerank(
        self, question: str, hits: list[Hit], k: int, owner: Owner | None = None
    ) -> list[Hit]:
        if not hits or k < 1:
            return []
        reranked = await self._inner.rerank(question, hits, len(hits), owner)
        reranked = [h.scored(RERANKER_STAGE, h.score) for h in reranked]
        return reciprocal_rank_fusion([hits, reranked], k=self._rrf_k, stage="reranked_fused")[:k]
