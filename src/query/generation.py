"""The generative answerer: the numbered sources and the question go to a chat
model, and its reply streams back as it is written. Also: reading which
sources an answer cites."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

from query.answerer import NOTHING_FOUND, replay
from query.llm.base import ChatModel, Message
from query.prompts import answer_messages
from shared.storage.vectorstore import Hit

# [1], [2, 3], [2-4], [1; 3]; "[1][3]" is two matches. A bracket glued to a word
# (items[1]) is code or a footnote, not a citation.
_CITATION = re.compile(r"(?<!\w)\[\s*(\d+(?:\s*(?:[-\u2013,;]|and)\s*\d+)*)\s*\]")
_CITED_PART = re.compile(r"(\d+)(?:\s*[-\u2013]\s*(\d+))?")


def cited_numbers(answer: str, n_sources: int) -> list[int]:
    """The source numbers (1 to ``n_sources``) the answer cites, each once, in
    the order the answer first cites them. Ranges such as [2-4] count every
    number in them; numbers outside the sources are ignored."""
    cited: dict[int, None] = {}
    for match in _CITATION.finditer(answer):
        for part in _CITED_PART.finditer(match.group(1)):
            first = int(part.group(1))
            last = int(part.group(2)) if part.group(2) else first
            for n in range(max(first, 1), min(last, n_sources) + 1):
                cited.setdefault(n, None)
    return list(cited)


class LLMGenerator:
    """A ``Generator`` backed by a chat model."""

    def __init__(self, model: ChatModel, max_tokens: int) -> None:
        self.model = model
        self.max_tokens = max_tokens

    async def stream(
        self, question: str, hits: list[Hit], history: Sequence[Message] = ()
    ) -> AsyncIterator[str]:
        """The model's text deltas. ``history`` (earlier user and assistant
        turns, oldest first) lets the answer follow the conversation."""
        if not hits:
            # Nothing to ground an answer in: a model would only guess.
            async for piece in replay(NOTHING_FOUND):
                yield piece
            return
        messages = answer_messages(question, hits, list(history))
        async for delta in self.model.stream(messages, max_tokens=self.max_tokens):
            if delta:
                yield delta
