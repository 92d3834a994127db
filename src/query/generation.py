"""The generative answerer: the numbered sources and the question go to a chat
model, and its reply streams back as it is written, each citation checked
against the sources."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing

from query.answerer import not_found, replay
from query.citations import checked_citations, close_stream
from query.evidence import Evidence
from query.llm.base import ChatModel, Message
from query.prompts import answer_messages
from shared.storage.vectorstore import Hit


class LLMGenerator:
    """A ``Generator`` backed by a chat model."""

    def __init__(self, model: ChatModel, max_tokens: int) -> None:
        self.model = model
        self.max_tokens = max_tokens

    async def stream(
        self,
        question: str,
        hits: list[Hit],
        history: Sequence[Message] = (),
        evidence: Evidence | None = None,
    ) -> AsyncIterator[str]:
        """The model's text deltas. ``history`` (earlier user and assistant
        turns, oldest first) lets the answer follow the conversation. The
        relevance gate ran before (``ChatHandler``): ``evidence`` is not read."""
        if not hits:
            # Nothing to ground an answer in: a model would only guess.
            async for piece in replay(not_found(hits)):
                yield piece
            return
        messages = answer_messages(question, hits, list(history))
        # Closed as soon as this stream is (a cancel), down to the model's
        # stream: its connection is what keeps it generating, and billing.
        deltas = _non_empty(self.model.stream(messages, max_tokens=self.max_tokens))
        async with aclosing(checked_citations(deltas, len(hits))) as pieces:
            async for piece in pieces:
                yield piece


async def _non_empty(deltas: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    try:
        async for delta in deltas:
            if delta:
                yield delta
    finally:
        await close_stream(deltas)
