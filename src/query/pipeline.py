"""The retrieval half of answering: from a question (and its conversation) to
the numbered passages the answer may cite.

    follow-up ──memory──▶ standalone question ──(HyDE)──▶ retrieve (dense,
    lexical or hybrid) ──(rerank)──▶ top k ──(compress)──▶ sources

Each step is chosen per request from the worker's settings and the request's
overrides (``ChatOptions``); the steps that need a generative model are
refused, with the reason, when none is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog

from query.compression import Compressor
from query.hyde import hypothetical_passage
from query.llm import ChatModel, Message
from query.memory import standalone_question
from query.rerank.base import Reranker
from query.retrieval import Owner, Retriever
from shared.config import RerankingMethod, RetrievalMode, Settings
from shared.contracts.events import ChatRequest
from shared.errors import InvalidInput, Unavailable
from shared.runtime.tracing import traced
from shared.storage.vectorstore import Hit

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Plan:
    """What one request's retrieval does: the settings with its overrides applied."""

    top_k: int
    retrieval: RetrievalMode
    reranking: RerankingMethod
    hyde: bool
    compression: bool
    document_ids: tuple[UUID, ...] | None = None

    @classmethod
    def for_request(cls, request: ChatRequest, settings: Settings) -> Plan:
        options = request.options
        return cls(
            top_k=request.top_k or settings.retrieval_top_k,
            retrieval=options.retrieval or settings.retrieval_mode,
            reranking=options.reranking or settings.reranking_method,
            hyde=settings.rag_use_hyde if options.hyde is None else options.hyde,
            compression=(
                settings.rag_use_compression if options.compression is None else options.compression
            ),
            document_ids=tuple(options.document_ids) if options.document_ids else None,
        )

    def cache_parts(self) -> tuple[object, ...]:
        return (self.top_k, self.retrieval, self.reranking, self.hyde, self.compression,
                self.document_ids)  # fmt: skip


@dataclass
class RetrievalPipeline:
    retriever: Retriever
    rerankers: Mapping[str, Reranker]
    compressor: Compressor
    model: ChatModel | None
    candidates: int
    rerank_candidates: int
    memory_turns: int

    def check(self, plan: Plan) -> None:
        if plan.hyde and self.model is None:
            raise InvalidInput("HyDE needs a generative model: set LLM_PROVIDER")
        if plan.reranking != "none" and plan.reranking not in self.rerankers:
            raise InvalidInput(
                f"reranking {plan.reranking!r} is not available on this worker"
                + (": it needs LLM_PROVIDER" if plan.reranking == "llm" else "")
            )

    @traced("retrieve", run_type="retriever")
    async def find(
        self, owner: Owner, question: str, history: Sequence[Message], plan: Plan
    ) -> tuple[str, list[Hit]]:
        """The standalone question and the passages to answer it from."""
        self.check(plan)
        standalone = await standalone_question(
            question, list(history), self.model, max_turns=self.memory_turns
        )
        dense_text = await self._hyde(standalone) if plan.hyde else None
        wanted = plan.top_k
        if plan.reranking != "none":
            wanted = max(plan.top_k, self.rerank_candidates)
        hits = await self.retriever.retrieve(
            owner,
            standalone,
            mode=plan.retrieval,
            k=max(wanted, self.candidates) if plan.retrieval == "hybrid" else wanted,
            dense_text=dense_text,
            document_ids=plan.document_ids,
        )
        if plan.reranking == "none":
            hits = hits[: plan.top_k]
        else:
            hits = await self.rerankers[plan.reranking].rerank(
                standalone, hits[:wanted], plan.top_k, owner
            )
        if plan.compression and hits:
            hits = await self.compressor.compress(standalone, hits)
        return standalone, hits

    async def _hyde(self, question: str) -> str | None:
        assert self.model is not None
        try:
            passage = await hypothetical_passage(question, self.model)
        except Unavailable as exc:
            # Retrieval still works from the question alone.
            log.warning("HyDE skipped", error=exc.message)
            return None
        return f"{question}\n{passage}"
