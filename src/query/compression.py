"""Contextual compression: keep only the sentences of each retrieved passage
that bear on the question, so the answer is written from less noise.

Whatever a compressor keeps is quoted from the passage, never rewritten: a
citation must still point at text the document contains. Kept sentences are
joined with a space where they were neighbours and with " … " where
sentences between them were dropped. A passage with nothing relevant is
dropped, but the top passage is always kept, uncompressed if need be.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

import structlog

from query.llm.base import ChatModel
from query.prompts import NOTHING_RELEVANT, extraction_messages, neutralize
from query.sentences import split_sentences
from shared.adapters.embedding import Embedder
from shared.errors import Unavailable
from shared.storage.vectorstore import Hit

log = structlog.get_logger(__name__)

GAP = " … "


class Compressor(Protocol):
    async def compress(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The hits, same order, each cut down to what bears on the question;
        hits with nothing relevant are left out, but never all of them."""
        ...


def join_kept(sentences: Sequence[str], kept: Iterable[int]) -> str:
    text = ""
    previous: int | None = None
    for i in sorted(set(kept)):
        if previous is not None:
            text += " " if i == previous + 1 else GAP
        text += sentences[i]
        previous = i
    return text


def cut_down(hit: Hit, sentences: Sequence[str], kept: Iterable[int]) -> Hit | None:
    """``hit`` with only the ``kept`` sentences (``None`` if there are none)."""
    chosen = set(kept)
    if not chosen:
        return None
    if len(chosen) == len(sentences):
        return hit
    return replace(hit, text=join_kept(sentences, chosen))


def never_empty(hits: Sequence[Hit], compressed: Sequence[Hit | None]) -> list[Hit]:
    kept = [hit for hit in compressed if hit is not None]
    if kept or not hits:
        return kept
    # An answer needs some context: the best passage, as retrieved.
    return [hits[0]]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def _choose(scores: Sequence[float], threshold: float, max_sentences: int) -> list[int]:
    """Indices of the sentences at or above the threshold, and the best one
    whatever its score, at most ``max_sentences``, best first."""
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return [i for n, i in enumerate(ranked) if n == 0 or scores[i] >= threshold][:max_sentences]


class EmbeddingCompressor:
    """Offline: keeps the sentences whose embedding is close enough to the
    question's, and always each passage's closest sentence (so a passage is
    trimmed, never dropped, unless it has no sentence at all)."""

    def __init__(self, embedder: Embedder, threshold: float, max_sentences: int) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self.embedder = embedder
        self.threshold = threshold
        self.max_sentences = max_sentences

    async def compress(self, question: str, hits: list[Hit]) -> list[Hit]:
        split = await asyncio.to_thread(lambda: [split_sentences(h.text) for h in hits])
        flat = [s for sentences in split for s in sentences]
        if not flat:
            return never_empty(hits, [None] * len(hits))
        query = await self.embedder.embed_query(question)
        vectors = await self.embedder.embed_documents(flat)
        chosen = await asyncio.to_thread(self._choose_all, query, vectors, split)
        return never_empty(
            hits, [cut_down(h, s, c) for h, s, c in zip(hits, split, chosen, strict=True)]
        )

    def _choose_all(
        self,
        query: Sequence[float],
        vectors: Sequence[Sequence[float]],
        split: Sequence[Sequence[str]],
    ) -> list[list[int]]:
        chosen: list[list[int]] = []
        start = 0
        for sentences in split:
            scores = [_cosine(query, v) for v in vectors[start : start + len(sentences)]]
            start += len(sentences)
            chosen.append(_choose(scores, self.threshold, self.max_sentences))
        return chosen


def _norm(text: str) -> str:
    # The model saw the passage neutralized and may re-wrap lines or change case.
    return " ".join(neutralize(text).split()).casefold()


_LIST_MARK = "-*•+ \t"
_QUOTES = "\"'\u201c\u201d\u2018\u2019`"


def _reply_lines(reply: str) -> list[str]:
    lines: list[str] = []
    for line in reply.splitlines():
        plain = line.strip()
        bare = plain.lstrip(_LIST_MARK).strip().strip(_QUOTES).strip()
        lines.extend(_norm(variant) for variant in {plain, bare} if variant)
    return lines


def verified(reply: str, sentences: Sequence[str]) -> list[int]:
    """Indices of the passage's sentences that the reply quotes: whole (maybe
    with neighbours on the same line) or as most of the sentence. Text the
    passage does not contain matches nothing."""
    lines = _reply_lines(reply)
    kept: list[int] = []
    for i, sentence in enumerate(sentences):
        target = _norm(sentence)
        if any(
            target in line or (line in target and 2 * len(line) >= len(target)) for line in lines
        ):
            kept.append(i)
    return kept


def says_nothing_relevant(reply: str) -> bool:
    return reply.strip().strip(".").strip(_QUOTES).upper() == NOTHING_RELEVANT


class LLMCompressor:
    """Asks the model to copy out the relevant sentences of each passage, and
    keeps those that the passage really contains."""

    def __init__(self, model: ChatModel, concurrency: int = 4) -> None:
        self.model = model
        self._concurrency = concurrency

    async def compress(self, question: str, hits: list[Hit]) -> list[Hit]:
        # One call per passage keeps each reply short and easy to check;
        # the cap keeps a large top-k from flooding the provider.
        gate = asyncio.Semaphore(self._concurrency)
        split = await asyncio.to_thread(lambda: [split_sentences(h.text) for h in hits])

        async def one(hit: Hit, sentences: list[str]) -> Hit | None:
            async with gate:
                return await self._compress_one(question, hit, sentences)

        compressed = await asyncio.gather(*(one(h, s) for h, s in zip(hits, split, strict=True)))
        return never_empty(hits, compressed)

    async def _compress_one(self, question: str, hit: Hit, sentences: list[str]) -> Hit | None:
        if not sentences:
            return None
        try:
            reply = await self.model.complete(
                extraction_messages(question, hit.text), max_tokens=len(hit.text) // 3 + 32
            )
        except Unavailable as exc:
            log.warning("Compression skipped for a passage", error=exc.message)
            return hit
        if says_nothing_relevant(reply):
            return None
        kept = verified(reply, sentences)
        if not kept:
            # Empty, or only text the passage does not contain: the model did
            # not do the job, which says nothing about the passage.
            log.warning("Compression reply quoted nothing from the passage", chars=len(reply))
            return hit
        return cut_down(hit, sentences, kept)
