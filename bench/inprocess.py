"""The baseline every pipeline figure is set against: the query worker's own
answering code (``ChatHandler``: history, cache, retrieval, the LLM,
coalescing, remembering) called in this process, with no Kafka, gateway, HTTP
or SSE between it and the caller. Its reply events are timed where the worker
would publish them, so "pipeline minus baseline" is exactly what the hops add.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.client import Account, StreamResult
from query.cancellation import Cancellations
from query.chat import ChatHandler
from query.claims import claim, held
from query.evidence import EvidenceReader
from query.generation import LLMGenerator
from query.llm import build_chat_model
from query.streaming import ReplyStream
from query.worker import build_pipeline
from shared.adapters.onnx_models import MS_MARCO_MINILM_L12, OnnxTextModel
from shared.config import Settings
from shared.contracts.events import ChatOptions, ChatRequest, Reply, TokenReply, utcnow
from shared.runtime.clients import Clients, open_clients
from shared.runtime.logging import configure_logging


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_from(env: dict[str, str]) -> Settings:
    """The settings a process started with ``env`` would read."""
    with _environment(env):
        return Settings()


def log_to_file(settings: Settings, path: Path) -> None:
    """Log as the worker does (same format and level), into a file rather
    than over the benchmark's table."""
    configure_logging(settings, "bench-inprocess")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(path.open("a"))


@dataclass
class TimedStream(ReplyStream):
    """A ``ReplyStream`` that notes when each event would be published."""

    began: float = 0.0
    first_token: float | None = None
    ended: float = 0.0
    tokens: int = 0
    events: list[str] = field(default_factory=list)

    async def _send_nowait(self, reply: Reply) -> None:
        if isinstance(reply, TokenReply):
            if self.first_token is None:
                self.first_token = time.perf_counter() - self.began
            self.tokens += reply.text.count("tok")
        self.events.append(_kind(reply))

    async def _send_terminal(self, reply: Reply) -> None:
        self.ended = time.perf_counter() - self.began
        self.events.append(_kind(reply))
        self.finished = True


def _kind(reply: Reply) -> str:
    """ "token", "sources", "done" or "error": the subclass's ``type``."""
    kind: str = reply.model_dump(include={"type"})["type"]
    return kind


@dataclass
class InProcess:
    clients: Clients
    handler: ChatHandler

    async def chat(self, account: Account, message: str, **options: Any) -> StreamResult:
        request = ChatRequest(
            correlation_id=f"bench-{uuid.uuid4().hex[:12]}",
            tenant_id=uuid.UUID(account.tenant_id),
            user_id=uuid.UUID(account.user_id),
            conversation_id=uuid.uuid4(),
            message=message,
            options=ChatOptions(**options),
            deadline=utcnow() + timedelta(seconds=60),
        )
        stream = TimedStream(
            broker=self.clients.broker,
            default_topic=self.clients.topics.chat_replies,
            request=request,
            coalesce_words=self.clients.settings.token_coalesce_words,
            began=time.perf_counter(),
        )
        # What ChatHandler.handle does around _answer, minus the Kafka publish.
        lease = self.clients.settings.chat_claim_lease_seconds
        if not await claim(self.clients.redis, request, stream.attempt_id, lease):
            raise RuntimeError("a fresh stream id was already claimed")
        async with held(self.clients.redis, request, stream.attempt_id, lease):
            await self.handler._answer(request, stream)
        terminal = stream.events[-1] if stream.finished else "none"
        return StreamResult(
            200, stream.first_token, stream.ended, terminal, stream.tokens, len(stream.events)
        )


@asynccontextmanager
async def in_process(env: dict[str, str], log_dir: Path) -> AsyncIterator[InProcess]:
    settings = settings_from(env)
    log_to_file(settings, log_dir / "inprocess.log")
    async with open_clients(settings, "bench-inprocess") as clients:
        model = build_chat_model(settings)
        if model is None:
            raise RuntimeError("the in-process baseline needs the stub LLM (LLM_PROVIDER)")
        scorer = OnnxTextModel.load(MS_MARCO_MINILM_L12)
        handler = ChatHandler(
            clients=clients,
            pipeline=build_pipeline(clients, model, scorer),
            generator=LLMGenerator(model, max_tokens=settings.llm_max_tokens),
            cancellations=Cancellations(),
            reader=EvidenceReader(scorer, max_pairs=settings.answer_scored_sentences),
            answer_ungrounded=settings.llm_answer_ungrounded,
        )
        try:
            yield InProcess(clients, handler)
        finally:
            # Left to the garbage collector, the model's client would close
            # itself during a later benchmark and unregister sockets that
            # reused its descriptors: 5 of the 5,000 streams of #3 hung so.
            await model.aclose()
