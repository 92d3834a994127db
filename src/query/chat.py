"""Answering one chat request: retrieve, generate, stream, remember."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from query.answerer import Generator, replay
from query.cancellation import Cancellations
from query.generation import cited_numbers
from query.llm import Message
from query.metrics import CHAT_REQUESTS, FIRST_TOKEN_SECONDS
from query.pipeline import Plan, RetrievalPipeline
from query.retrieval import Owner
from query.streaming import ReplyStream
from shared import chat_history
from shared.cache import answer_key, corpus_generation
from shared.clients import Clients
from shared.errors import InvalidInput
from shared.events import ChatRequest, Source, utcnow
from shared.vectorstore import Hit

log = structlog.get_logger(__name__)

_SNIPPET_CHARS = 240
FAILED_MESSAGE = "The answer could not be generated; please try again."


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


@dataclass
class ChatHandler:
    clients: Clients
    pipeline: RetrievalPipeline
    generator: Generator
    cancellations: Cancellations

    async def handle(self, request: ChatRequest) -> None:
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
        try:
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

    async def _answer(self, request: ChatRequest, stream: ReplyStream) -> None:
        settings = self.clients.settings
        plan = Plan.for_request(request, settings)
        history = await self._history(request)
        # A follow-up depends on its conversation: only first questions are cached.
        cacheable = settings.rag_use_cache and not history
        cache_key = await self._cache_key(request, plan) if cacheable else None
        cached = await self.clients.redis.get(cache_key) if cache_key else None
        pieces: AsyncIterator[str]
        if cached:
            answer, sources = self._from_cache(cached)
            pieces = replay(answer)
        else:
            owner = Owner(request.tenant_id, request.user_id)
            question, hits = await self.pipeline.find(owner, request.message, history, plan)
            sources = to_sources(hits)
            pieces = self.generator.stream(question, hits, history)
        await stream.sources(sources)
        words: list[str] = []
        async for piece in pieces:
            if self.cancellations.is_cancelled(request):
                CHAT_REQUESTS.labels("cancelled").inc()
                log.info("Generation cancelled", words=len(words))
                return
            if not words:
                FIRST_TOKEN_SECONDS.observe((utcnow() - request.created_at).total_seconds())
            words.append(piece)
            await stream.token(piece)
        answer = "".join(words)
        cited = cited_numbers(answer, len(sources))
        await self._remember(request, answer, sources)
        if cache_key and not cached:
            await self.clients.redis.set(
                cache_key, self._to_cache(answer, sources), ex=settings.cache_ttl_seconds
            )
        await stream.done(cited)
        CHAT_REQUESTS.labels("cached" if cached else "answered").inc()
        log.info("Chat answered", sources=len(sources), cited=cited, cached=bool(cached))

    async def _history(self, request: ChatRequest) -> list[Message]:
        turns = self.clients.settings.memory_turns
        if not turns:
            return []
        past = await chat_history.list_turns(
            self.clients.pool,
            request.tenant_id,
            request.user_id,
            conversation_id=request.conversation_id,
            limit=2 * turns,
        )
        return [Message(role=t.role, content=t.content) for t in past]

    async def _cache_key(self, request: ChatRequest, plan: Plan) -> str:
        generation = await corpus_generation(self.clients.redis, request.tenant_id)
        question = " ".join(request.message.lower().split())
        return answer_key(
            request.tenant_id, request.user_id, generation, *plan.cache_parts(), question
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

    async def _remember(self, request: ChatRequest, answer: str, sources: list[Source]) -> None:
        await chat_history.append_exchange(
            self.clients.pool,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            conversation_id=request.conversation_id,
            correlation_id=request.correlation_id,
            question=request.message,
            answer=answer,
            sources=[s.model_dump(mode="json") for s in sources],
        )
