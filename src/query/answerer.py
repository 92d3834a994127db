"""The offline answerer: quotes the whole sentences of the retrieved passages
that answer the question, each quote under its heading and with a citation
``[n]`` pointing into the sources list.

It never invents text, so it needs no model beyond the bundled cross-encoder
(which scored the sentences, ``query.evidence``) and no network; an LLM
provider replaces it behind the same ``Generator`` shape.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from query.display import plain
from query.evidence import Candidate, Evidence, context_of, quotable
from query.llm.base import Message
from shared.storage.vectorstore import Hit

NOT_FOUND = "I could not find an answer to that in your documents."
NOT_FOUND_WITH_SOURCES = (
    f"{NOT_FOUND} The closest passages are listed as sources, but none of them answers it."
)
_WORD_PIECE = re.compile(r"\s*\S+\s*")
# A sentence opening with one of these leans on the one before it.
_LEANS_BACK = re.compile(
    r"^(?:it|its|this|these|that|those|they|their|such|otherwise|however|then|also|"
    r"in that case|if so|for example|for instance)\b",
    re.IGNORECASE,
)
_GAP = " … "


class Generator(Protocol):
    def stream(
        self,
        question: str,
        hits: list[Hit],
        history: Sequence[Message] = (),
        evidence: Evidence | None = None,
    ) -> AsyncIterator[str]:
        """The answer as it is produced; it cites ``hits`` as [1], [2], ..."""
        ...


@dataclass(frozen=True)
class AnswerPolicy:
    """How much the offline answer quotes."""

    min_relevance: float
    """The cross-encoder logit a sentence needs to be quoted at all."""
    max_quotes: int
    """At most this many sentences in an answer, neighbours included."""
    margin: float = 3.0
    """Beyond the best sentence, quote those ranked within this much of it."""


def not_found(hits: Sequence[Hit]) -> str:
    return NOT_FOUND_WITH_SOURCES if hits else NOT_FOUND


def choose(evidence: Evidence, policy: AnswerPolicy) -> list[Candidate]:
    """The sentences that answer, most important first: the best one, the
    best for each part of a compound question, then any close to the best."""
    if not evidence.relevant(policy.min_relevance):
        return []
    best = evidence.scored[0]
    picked = [best]
    for k in range(len(evidence.parts)):
        top = max(evidence.scored, key=lambda c: c.part_scores[k])
        if top.part_scores[k] >= policy.min_relevance and top not in picked:
            picked.append(top)
    floor = best.rank_score - policy.margin
    picked += [c for c in evidence.scored[1:] if c.rank_score >= floor and c not in picked]
    return picked[: policy.max_quotes]


def _neighbours(evidence: Evidence, chosen: Candidate) -> list[int]:
    """Positions of the units a quote needs to make sense: the one before
    when it leans back ("It ..."), the one after when it leans on it
    (a sentence ending in ':' or followed by "This ...")."""
    units = evidence.units[chosen.citation - 1]
    i = chosen.position
    wanted: list[int] = []
    if i > 0 and _LEANS_BACK.match(plain(chosen.unit.text)) and quotable(units[i - 1]):
        wanted.append(i - 1)
    if i + 1 < len(units) and quotable(units[i + 1]):
        follows = units[i + 1]
        if chosen.unit.text.rstrip().endswith(":") or (
            follows.kind == "sentence" and _LEANS_BACK.match(plain(follows.text))
        ):
            wanted.append(i + 1)
    return wanted


def with_neighbours(
    evidence: Evidence, chosen: Sequence[Candidate], limit: int
) -> dict[int, set[int]]:
    """Positions to quote, by citation: each chosen unit, then its needed
    neighbours, while fewer than ``limit`` are taken."""
    taken: dict[int, set[int]] = {}
    count = 0
    for c in chosen:
        for position in [c.position, *_neighbours(evidence, c)]:
            if count >= limit:
                return taken
            if position not in taken.setdefault(c.citation, set()):
                taken[c.citation].add(position)
                count += 1
    return taken


def _quote(units: Sequence[str], positions: Sequence[int]) -> str:
    text = ""
    for n, position in enumerate(positions):
        if n:
            text += " " if position == positions[n - 1] + 1 else _GAP
        text += units[position]
    return text


def compose(evidence: Evidence, hits: Sequence[Hit], policy: AnswerPolicy) -> str:
    """The answer text: quotes by passage rank, sentences of one passage in
    document order, each passage's quote under its heading; or the
    not-found message when nothing is relevant enough."""
    chosen = choose(evidence, policy)
    if not chosen:
        return not_found(hits)
    lines = []
    for citation, positions in sorted(with_neighbours(evidence, chosen, policy.max_quotes).items()):
        units = evidence.units[citation - 1]
        ordered = sorted(positions)
        text = _quote([plain(u.text) for u in units], ordered)
        where = plain(context_of(hits[citation - 1], units[ordered[0]]))
        lines.append(f'- {where}: "{text}" [{citation}]')
    return "From your documents:\n" + "\n".join(lines)


async def replay(text: str) -> AsyncIterator[str]:
    """A finished text as a stream of words (joined, they give it back)."""
    for piece in _WORD_PIECE.findall(text):
        yield piece


class ExtractiveGenerator:
    def __init__(self, policy: AnswerPolicy) -> None:
        self.policy = policy

    async def stream(
        self,
        question: str,
        hits: list[Hit],
        history: Sequence[Message] = (),
        evidence: Evidence | None = None,
    ) -> AsyncIterator[str]:
        # Quotes answer the (already standalone) question; history adds nothing.
        # Composing is a few string operations: the model ran in ``evidence``.
        answer = compose(evidence, hits, self.policy) if evidence is not None else not_found(hits)
        async for piece in replay(answer):
            yield piece
