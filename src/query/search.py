"""Answering one search request: the retrieval half of a chat, and no answer.

The passages come from the same ``RetrievalPipeline`` a chat's sources come
from, with the same plan (the worker's settings and the request's options),
so a search shows exactly what a chat with the same options would be given,
with the score of every stage that ranked each passage. There is no
conversation: the query is searched as written.

A search is cheap and idempotent, so it is neither claimed nor cancelled: a
request redelivered after a crash is searched again, and the gateway keeps
the first reply it hears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import structlog

from query.metrics import SEARCH_REQUESTS
from query.pipeline import Plan, RetrievalPipeline
from query.retrieval import Owner
from shared.contracts.events import (
    Passage,
    SearchReply,
    SearchRequest,
    StageScores,
    new_attempt_id,
    utcnow,
)
from shared.errors import InvalidInput
from shared.runtime.clients import Clients
from shared.runtime.kafka import publish
from shared.runtime.tracing import traced
from shared.storage.vectorstore import Hit

log = structlog.get_logger(__name__)

FAILED_MESSAGE = "The search failed; please try again."


def to_passages(hits: list[Hit]) -> list[Passage]:
    return [
        Passage(
            rank=rank,
            document_id=h.document_id,
            filename=h.filename,
            chunk_index=h.chunk_index,
            page=h.page,
            section=h.section,
            text=h.text,
            score=h.score,
            scores=StageScores.model_validate(h.stage_scores()),
        )
        for rank, h in enumerate(hits, start=1)
    ]


@dataclass
class SearchHandler:
    clients: Clients
    pipeline: RetrievalPipeline

    async def handle(self, request: SearchRequest) -> str:
        self._check_reply_to(request)
        if request.deadline <= utcnow():
            SEARCH_REQUESTS.labels("expired").inc()
            log.info("Search request expired", deadline=request.deadline.isoformat())
            return "expired"
        try:
            passages = await self._search(request)
        except InvalidInput as exc:
            SEARCH_REQUESTS.labels("refused").inc()
            await self._reply(request, outcome="refused", error=exc.message)
            return "refused"
        except Exception:
            SEARCH_REQUESTS.labels("failed").inc()
            await self._reply(request, outcome="failed", error=FAILED_MESSAGE)
            raise
        await self._reply(request, passages=passages)
        SEARCH_REQUESTS.labels("answered").inc()
        log.info("Search answered", passages=len(passages))
        return "answered"

    def _check_reply_to(self, request: SearchRequest) -> None:
        """Replies go only to this deployment's reply topic (anyone who can
        publish a request writes ``reply_to``); anything else is dead-lettered."""
        replies = self.clients.topics.chat_replies
        if request.reply_to is not None and request.reply_to.topic != replies:
            raise InvalidInput(
                f"reply_to.topic {request.reply_to.topic[:200]!r} is not this deployment's"
                f" reply topic {replies!r}"
            )

    @traced("search")
    async def _search(self, request: SearchRequest) -> list[Passage]:
        plan = Plan.for_options(request.top_k, request.options, self.clients.settings)
        owner = Owner(request.tenant_id, request.user_id)
        _, hits = await self.pipeline.find(owner, request.query, [], plan)
        return to_passages(hits)

    async def _reply(
        self,
        request: SearchRequest,
        *,
        passages: list[Passage] | None = None,
        outcome: Literal["answered", "refused", "failed"] = "answered",
        error: str | None = None,
    ) -> None:
        reply = SearchReply(
            correlation_id=request.correlation_id,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            stream_id=request.stream_id,
            attempt_id=new_attempt_id(),
            outcome=outcome,
            passages=passages or [],
            error=error,
        )
        where: dict[str, Any]
        if request.reply_to is None:
            # Internal callers without a gateway read the default reply topic.
            topic, where = self.clients.topics.chat_replies, {"key": request.stream_id}
        else:
            topic, where = request.reply_to.topic, {"partition": request.reply_to.partition}
        await publish(self.clients.broker, topic, reply, **where)
