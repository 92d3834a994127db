"""Answering one chat request: retrieve, generate, stream, remember."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import structlog
from redis.exceptions import RedisError

from query.answerer import NOT_FOUND, Generator, not_found, replay
from query.cancellation import Cancellations
from query.citations import cited_numbers
from query.claims import claim, held
from query.evidence import EvidenceReader
from query.llm import Message
from query.metrics import (
    ANSWER_CACHE,
    ANSWERS,
    CHAT_REQUESTS,
    FIRST_TOKEN_SECONDS,
    GENERATIONS_STOPPED,
    RELEVANCE,
)
from query.pipeline import Plan, RetrievalPipeline
from query.retrieval import Owner
from query.streaming import ReplyStream
from shared.config import STREAM_TIMEOUT_MAX, Settings
from shared.contracts.events import ChatRequest, Source, utcnow
from shared.errors import InvalidInput
from shared.runtime.clients import Clients
from shared.runtime.tracing import traced
from shared.storage import chat_history
from shared.storage.cache import answer_generation, answer_key
from shared.storage.vectorstore import Hit

log = structlog.get_logger(__name__)

_SNIPPET_CHARS = 240
FAILED_MESSAGE = "The answer could not be generated; please try again."

# What an answer depends on besides the request and the corpus: part of the
# answer cache's key, so a worker started with another model or ranking never
# serves answers cached under the old one.
ANSWER_SETTINGS = (
    "embedding_provider",
    "embedding_model",
    "embedding_dim",
    "llm_provider",
    "llm_model",
    "llm_temperature",
    "llm_max_tokens",
    "openai_base_url",
    "retrieval_candidates",
    "rrf_k",
    "rerank_candidates",
    "rerank_fusion",
    "rerank_max_chars",
    "mmr_lambda",
    "compression_threshold",
    "answer_min_relevance",
    "answer_max_quotes",
    "answer_scored_sentences",
    "llm_answer_ungrounded",
)


def answer_settings(settings: Settings) -> str:
    return "\x1e".join(f"{name}={getattr(settings, name)!r}" for name in ANSWER_SETTINGS)


def to_sources(hits: list[Hit]) -> list[Source]:
    return [
        Source(
            n=n,
            document_id=h.document_id,
            filename=h.filename,
            chunk_index=h.chunk_index,
            score=h.score,
            snippet=h.text[:_SNIPPET_CHARS],
            text=h.text,
            page=h.page,
            section=h.section,
        )
        for n, h in enumerate(hits, start=1)
    ]


def grounding(answer: str, n_sources: int) -> tuple[list[int], bool]:
    """(the sources cited, whether the answer is grounded in them): an answer
    that cites nothing, or says the documents do not answer, is not."""
    if answer.startswith(NOT_FOUND):
        return [], False
    cited = cited_numbers(answer, n_sources)
    return cited, bool(cited)


@dataclass
class ChatHandler:
    clients: Clients
    pipeline: RetrievalPipeline
    generator: Generator
    cancellations: Cancellations
    reader: EvidenceReader
    answer_ungrounded: bool = False
    """Generate even when the gate finds nothing relevant (``LLM_ANSWER_UNGROUNDED``)."""

    async def handle(self, request: ChatRequest) -> None:
        request = self._trusted(request)
        if request.deadline <= utcnow():
            # The client gave up already: spend nothing on it.
            CHAT_REQUESTS.labels("expired").inc()
            log.info("Chat request expired", deadline=request.deadline.isoformat())
            return
        if self.cancellations.is_cancelled(request):
            CHAT_REQUESTS.labels("cancelled").inc()
            log.info("Chat request cancelled before start")
            return
        stream = ReplyStream(
            broker=self.clients.broker,
            default_topic=self.clients.topics.chat_replies,
            request=request,
            coalesce_words=self.clients.settings.token_coalesce_words,
        )
        redis, lease = self.clients.redis, self.clients.settings.chat_claim_lease_seconds
        if not await claim(redis, request, stream.attempt_id, lease):
            # Redelivered (or published twice): another attempt has it already.
            CHAT_REQUESTS.labels("duplicate").inc()
            log.info("Chat request already claimed; skipped", stream_id=request.stream_id)
            return
        try:
            async with held(redis, request, stream.attempt_id, lease):
                await self._answer(request, stream)
        except InvalidInput as exc:
            # The request asked for something this worker cannot do: say why.
            CHAT_REQUESTS.labels("refused").inc()
            if not stream.finished:
                await stream.error(exc.message)
        except Exception:
            CHAT_REQUESTS.labels("failed").inc()
            if not stream.finished:
                await stream.error(FAILED_MESSAGE)
            raise

    def _trusted(self, request: ChatRequest) -> ChatRequest:
        """The request as this deployment will serve it. Anyone who can
        publish to the topic writes these fields: replies go only to this
        deployment's reply topic (anything else is dead-lettered, nothing
        sent there), and no deadline is further away than the longest
        stream a client may ask for (it also bounds the claim kept in Redis)."""
        replies = self.clients.topics.chat_replies
        if request.reply_to is not None and request.reply_to.topic != replies:
            raise InvalidInput(
                f"reply_to.topic {request.reply_to.topic[:200]!r} is not this deployment's"
                f" reply topic {replies!r}"
            )
        latest = utcnow() + timedelta(seconds=STREAM_TIMEOUT_MAX)
        if request.deadline > latest:
            return request.model_copy(update={"deadline": latest})
        return request

    # Traced (LangSmith, when on): the pipeline's retrieve and the generate
    # below are its child runs.
    @traced("chat")
    async def _answer(self, request: ChatRequest, stream: ReplyStream) -> None:
        settings = self.clients.settings
        plan = Plan.for_request(request, settings)
        history = await self._history(request)
        # A follow-up depends on its conversation: only first questions are cached.
        cacheable = settings.rag_use_cache and not history
        cache_key, cached = await self._look_up(request, plan) if cacheable else (None, None)
        pieces: AsyncIterator[str]
        if cached:
            answer, sources = self._from_cache(cached)
            pieces = replay(answer)
        else:
            owner = Owner(request.tenant_id, request.user_id)
            question, hits = await self.pipeline.find(owner, request.message, history, plan)
            sources = to_sources(hits)
            pieces = await self._generate(question, hits, history)
        await stream.sources(sources)
        words = await self._relay_pieces(request, pieces, stream)
        if words is None:
            return
        answer = "".join(words)
        cited, grounded = grounding(answer, len(sources))
        turn = await self._remember(request, answer, sources)
        if cache_key and not cached:
            await self._store(cache_key, answer, sources)
        await stream.done(cited, grounded=grounded, turn=turn)
        CHAT_REQUESTS.labels("cached" if cached else "answered").inc()
        ANSWERS.labels("grounded" if grounded else "not_found").inc()
        log.info(
            "Chat answered",
            sources=len(sources),
            cited=cited,
            grounded=grounded,
            cached=bool(cached),
        )

    async def _generate(
        self, question: str, hits: list[Hit], history: list[Message]
    ) -> AsyncIterator[str]:
        """The answer's pieces, behind the relevance gate: when no passage
        says enough about the question the answer is "not found", and no
        model is asked (it could only guess)."""
        evidence = await self.reader.read(question, hits)
        RELEVANCE.observe(max(evidence.best, -100.0))
        threshold = self.clients.settings.answer_min_relevance
        if not evidence.relevant(threshold) and not self.answer_ungrounded:
            log.info("No passage relevant enough", best=round(evidence.best, 2))
            return replay(not_found(hits))
        return self.generator.stream(question, hits, history, evidence)

    @traced("generate", run_type="llm")
    async def _relay_pieces(
        self, request: ChatRequest, pieces: AsyncIterator[str], stream: ReplyStream
    ) -> list[str] | None:
        """Stream the pieces out; None if a cancel stopped the generation."""
        words: list[str] = []
        try:
            async for piece in pieces:
                if reason := self.cancellations.reason(request):
                    CHAT_REQUESTS.labels("cancelled").inc()
                    GENERATIONS_STOPPED.labels(reason).inc()
                    log.info("Generation cancelled", words=len(words), reason=reason)
                    return None
                if not words:
                    FIRST_TOKEN_SECONDS.observe((utcnow() - request.created_at).total_seconds())
                words.append(piece)
                await stream.token(piece)
        finally:
            # Close the model's stream now, not when the generator is collected:
            # its connection is what keeps the model generating (and billing).
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()
        return words

    async def _history(self, request: ChatRequest) -> list[Message]:
        turns = self.clients.settings.memory_turns
        if not turns:
            return []
        if request.history is not None:
            # The client keeps the conversation (the OpenAI-compatible API).
            return [Message(role=t.role, content=t.content) for t in request.history[-2 * turns :]]
        past = await chat_history.list_turns(
            self.clients.pool,
            request.tenant_id,
            request.user_id,
            conversation_id=request.conversation_id,
            limit=2 * turns,
        )
        return [Message(role=t.role, content=t.content) for t in past]

    async def _look_up(
        self, request: ChatRequest, plan: Plan
    ) -> tuple[str | None, bytes | str | None]:
        """(cache key, cached answer); (None, None) if Redis fails: the cache
        only saves work, a chat must answer without it."""
        try:
            key = await self._cache_key(request, plan)
            cached: bytes | str | None = await self.clients.redis.get(key)
        except RedisError as exc:
            log.warning("Answer cache unavailable", error=type(exc).__name__)
            return None, None
        ANSWER_CACHE.labels("hit" if cached else "miss").inc()
        return key, cached

    async def _store(self, key: str, answer: str, sources: list[Source]) -> None:
        ttl = self.clients.settings.cache_ttl_seconds
        try:
            await self.clients.redis.set(key, self._to_cache(answer, sources), ex=ttl)
        except RedisError as exc:
            log.warning("Answer cache unavailable", error=type(exc).__name__)

    async def _cache_key(self, request: ChatRequest, plan: Plan) -> str:
        generation = await answer_generation(self.clients.pool, request.tenant_id)
        question = " ".join(request.message.lower().split())
        return answer_key(
            request.tenant_id,
            request.user_id,
            generation,
            answer_settings(self.clients.settings),
            *plan.cache_parts(),
            question,
        )

    @staticmethod
    def _to_cache(answer: str, sources: list[Source]) -> str:
        return json.dumps(
            {"answer": answer, "sources": [s.model_dump(mode="json") for s in sources]}
        )

    @staticmethod
    def _from_cache(raw: bytes | str) -> tuple[str, list[Source]]:
        data = json.loads(raw)
        return data["answer"], [Source.model_validate(s) for s in data["sources"]]

    async def _remember(self, request: ChatRequest, answer: str, sources: list[Source]) -> int:
        """The turn the exchange was filed as in its conversation."""
        return await chat_history.append_exchange(
            self.clients.pool,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            conversation_id=request.conversation_id,
            correlation_id=request.correlation_id,
            question=request.message,
            answer=answer,
            sources=[s.model_dump(mode="json") for s in sources],
        )
