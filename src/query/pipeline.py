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
from query.rerank.base import RERANKER_STAGE, Reranker
from query.retrieval import Owner, Retriever
from shared.config import RerankingMethod, RetrievalMode, Settings
from shared.contracts.events import ChatOptions, ChatRequest
from shared.contracts.labels import Filters
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
    filters: Filters | None = None

    @classmethod
    def for_request(cls, request: ChatRequest, settings: Settings) -> Plan:
        return cls.for_options(request.top_k, request.options, settings)

    @classmethod
    def for_options(cls, top_k: int | None, options: ChatOptions, settings: Settings) -> Plan:
        return cls(
            top_k=top_k or settings.retrieval_top_k,
            retrieval=options.retrieval or settings.retrieval_mode,
            reranking=options.reranking or settings.reranking_method,
            hyde=settings.rag_use_hyde if options.hyde is None else options.hyde,
            compression=(
                settings.rag_use_compression if options.compression is None else options.compression
            ),
            document_ids=tuple(options.document_ids) if options.document_ids else None,
            filters=options.filters,
        )

    def cache_parts(self) -> tuple[object, ...]:
        return (
            self.top_k,
            self.retrieval,
            self.reranking,
            self.hyde,
            self.compression,
            self.document_ids,
            self.filters.key() if self.filters else None,
        )


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

    # Traced (LangSmith, when on): this run, with a child run for each step
    # taken (condense, hyde, search, rerank, compress).
    @traced("retrieve", run_type="retriever")
    async def find(
        self, owner: Owner, question: str, history: Sequence[Message], plan: Plan
    ) -> tuple[str, list[Hit]]:
        """The standalone question and the passages to answer it from."""
        self.check(plan)
        standalone = await self._condense(question, history)
        dense_text = await self._hyde(standalone) if plan.hyde else None
        wanted = plan.top_k
        if plan.reranking != "none":
            wanted = max(plan.top_k, self.rerank_candidates)
        k = max(wanted, self.candidates) if plan.retrieval == "hybrid" else wanted
        hits = await self._search(owner, standalone, plan, k, dense_text)
        if plan.reranking == "none":
            hits = hits[: plan.top_k]
        else:
            hits = await self._rerank(owner, standalone, hits[:wanted], plan)
        if plan.compression and hits:
            hits = await self._compress(standalone, hits)
        return standalone, hits

    @traced("condense")
    async def _condense(self, question: str, history: Sequence[Message]) -> str:
        """A follow-up as a question that stands alone (memory)."""
        return await standalone_question(
            question, list(history), self.model, max_turns=self.memory_turns
        )

    @traced("search", run_type="retriever")
    async def _search(
        self, owner: Owner, question: str, plan: Plan, k: int, dense_text: str | None
    ) -> list[Hit]:
        return await self.retriever.retrieve(
            owner,
            question,
            mode=plan.retrieval,
            k=k,
            dense_text=dense_text,
            document_ids=plan.document_ids,
            filters=plan.filters,
        )

    @traced("rerank")
    async def _rerank(self, owner: Owner, question: str, hits: list[Hit], plan: Plan) -> list[Hit]:
        reranked = await self.rerankers[plan.reranking].rerank(question, hits, plan.top_k, owner)
        # The reranker's score, unless a fused reranker recorded it already.
        return [
            h if RERANKER_STAGE in h.stage_scores() else h.scored(RERANKER_STAGE, h.score)
            for h in reranked
        ]

    @traced("compress")
    async def _compress(self, question: str, hits: list[Hit]) -> list[Hit]:
        return await self.compressor.compress(question, hits)

    @traced("hyde")
    async def _hyde(self, question: str) -> str | None:
        assert self.model is not None
        try:
            passage = await hypothetical_passage(question, self.model)
        except Unavailable as exc:
            # Retrieval still works from the question alone.
            log.warning("HyDE skipped", error=exc.message)
            return None
        return f"{question}\n{passage}"
