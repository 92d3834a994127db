"""The offline answerer: quotes the retrieved sentences that best match the
question, each with a citation ``[n]`` pointing into the sources list.

It never invents text, so it needs no model and no network; an LLM provider
replaces it behind the same ``Generator`` shape.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from query.llm.base import Message
from shared.storage.vectorstore import Hit
from shared.text import terms

NOTHING_FOUND = "I could not find anything about that in your documents."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKUP = re.compile(r"^\s*(?:[#>]+|[-*+]|\d+[.)])\s+")
_WORD_PIECE = re.compile(r"\s*\S+\s*")


class Generator(Protocol):
    def stream(
        self, question: str, hits: list[Hit], history: Sequence[Message] = ()
    ) -> AsyncIterator[str]:
        """The answer as it is produced; it cites ``hits`` as [1], [2], ..."""
        ...


@dataclass(frozen=True)
class Quote:
    text: str
    citation: int
    score: float


def sentences(text: str) -> list[str]:
    cleaned = (_MARKUP.sub("", part).strip() for part in _SENTENCE_END.split(text))
    return [s for s in cleaned if len(s) > 3]


def best_quotes(question: str, hits: list[Hit], limit: int = 3) -> list[Quote]:
    wanted = set(terms(question))
    candidates = [(s, n) for n, hit in enumerate(hits, start=1) for s in sentences(hit.text)]
    # Rarer question words say more about which sentence answers it.
    frequency = {t: sum(t in terms(s) for s, _ in candidates) for t in wanted}
    quotes: dict[str, Quote] = {}
    for sentence, citation in candidates:
        matched = wanted.intersection(terms(sentence))
        score = sum(math.log(1 + len(candidates) / frequency[t]) for t in matched)
        if score > 0 and sentence not in quotes:
            quotes[sentence] = Quote(sentence, citation, score - 0.01 * citation)
    ranked = sorted(quotes.values(), key=lambda q: -q.score)
    # Keep only sentences that match about as well as the best one.
    return [q for q in ranked[:limit] if q.score >= ranked[0].score / 2]


def compose(question: str, hits: list[Hit]) -> str:
    if not hits:
        return NOTHING_FOUND
    quotes = best_quotes(question, hits)
    if not quotes:
        first = (sentences(hits[0].text) or [hits[0].text.strip()])[0]
        return f'The closest passage I found says: "{first}" [1]'
    lines = [f'"{q.text}" [{q.citation}]' for q in quotes]
    return "From your documents:\n" + "\n".join(f"- {line}" for line in lines)


async def replay(text: str) -> AsyncIterator[str]:
    """A finished text as a stream of words (joined, they give it back)."""
    for piece in _WORD_PIECE.findall(text):
        yield piece


class ExtractiveGenerator:
    async def stream(
        self, question: str, hits: list[Hit], history: Sequence[Message] = ()
    ) -> AsyncIterator[str]:
        # Quotes answer the (already standalone) question; history adds nothing.
        answer = await asyncio.to_thread(compose, question, hits)
        async for piece in replay(answer):
            yield piece
