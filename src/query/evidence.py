"""What the retrieved passages say about a question, sentence by sentence:
the evidence both the relevance gate and the offline answerer read.

Every quotable unit of the first passages (sentences, list items, table rows,
short code blocks; never a heading on its own) is a candidate. A cheap
word-overlap score picks the few worth a model's time, and the bundled
cross-encoder scores those against the question, each read under its page
title and heading (a sentence rarely names what it is about; its headings
do). A compound question ("how many days ..., and who approves it?") is also
scored part by part, so each part can find its own sentence.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePath

from query.sentences import Unit, passage_units
from shared.adapters.onnx_models import OnnxTextModel
from shared.storage.vectorstore import Hit
from shared.text import terms

# Longer than this, a unit is a listing or a wall of text, not an answer line.
_MAX_UNIT_CHARS = 400
_MAX_CODE_CHARS = 160
_PREFIX = 5  # characters of a word compared by the cheap score ("approves" ~ "approval")
# Where a compound question splits: ", and who ...", "? And how ...", "; what ...".
_PART_BREAK = re.compile(
    r"(?:[,;]\s*(?:and|or|but|also)?|\?|\band)\s+"
    r"(?=(?:who|what|when|where|which|why|how|whom|whose|is|are|can|do|does|should)\b)",
    re.IGNORECASE,
)
_MIN_PART_WORDS = 2
# How the answerer ranks units besides the model's score, chosen on the eval
# set's tuning half (docs/quality.md): the model learnt from web search and
# reads one sentence without its neighbours, so the question's rarer words
# and the passage's retrieval rank still say something it misses.
OVERLAP_WEIGHT = 0.5
RANK_PENALTY = 0.3


@dataclass(frozen=True)
class Candidate:
    """A unit of passage ``citation`` (1-based, as the answer cites it)."""

    citation: int
    position: int
    """Its index among the passage's units."""
    unit: Unit
    overlap: float = 0.0
    """Rarity-weighted overlap of its words (stems) with the question's."""
    score: float = -math.inf
    """The cross-encoder's logit for the whole question (higher: more relevant)."""
    part_scores: tuple[float, ...] = ()
    """The logit for each part of a compound question, in order."""

    @property
    def rank_score(self) -> float:
        """What the answerer ranks units by."""
        return self.score + OVERLAP_WEIGHT * self.overlap - RANK_PENALTY * (self.citation - 1)


@dataclass(frozen=True)
class Evidence:
    question: str
    parts: tuple[str, ...]
    """The question's parts when it asks more than one thing, else empty."""
    units: tuple[tuple[Unit, ...], ...]
    """Every unit of every passage read, by passage (citation - 1)."""
    scored: tuple[Candidate, ...] = field(default=())
    """The candidates the model read, best first."""

    @property
    def best(self) -> float:
        """The highest model score of any unit: what the relevance gate reads."""
        return max((c.score for c in self.scored), default=-math.inf)

    def relevant(self, threshold: float) -> bool:
        """Whether any passage says something about the question."""
        return self.best >= threshold


def question_parts(question: str) -> tuple[str, ...]:
    """The separate questions of a compound one ("How many days ..., and who
    approves it?" gives two); empty when it asks one thing."""
    pieces = [p.strip(" ,;?") for p in _PART_BREAK.split(question)]
    parts = tuple(p for p in pieces if len(p.split()) >= _MIN_PART_WORDS)
    return parts if len(parts) > 1 else ()


def quotable(unit: Unit) -> bool:
    if unit.kind == "code":
        # A command or a one-line call answers; a listing or a session does not.
        return len(unit.text) <= _MAX_CODE_CHARS and ">>>" not in unit.text
    return unit.kind != "heading" and len(unit.text) <= _MAX_UNIT_CHARS


def _stems(text: str) -> set[str]:
    return {t[:_PREFIX] for t in terms(text)}


def context_of(hit: Hit, unit: Unit) -> str:
    """Where a unit sits: the page title and its nearest heading (the last
    of the chunk's heading path when none is inside the passage)."""
    title = " ".join(PurePath(hit.filename).stem.replace("_", " ").replace("-", " ").split())
    heading = unit.heading or (hit.section or "").rsplit(" > ", 1)[-1].strip()
    return f"{title} > {heading}" if heading and heading != title else title


class EvidenceReader:
    """Reads the first ``max_passages`` hits; the model scores at most
    ``max_pairs`` (question, unit) pairs, so its cost is bounded whatever the
    passages hold (about 10 ms a pair on two cores)."""

    def __init__(self, model: OnnxTextModel, max_passages: int = 5, max_pairs: int = 16) -> None:
        if max_pairs < 1 or max_passages < 1:
            raise ValueError("max_pairs and max_passages must be at least 1")
        self._model = model
        self._max_passages = max_passages
        self._max_pairs = max_pairs

    async def read(self, question: str, hits: Sequence[Hit]) -> Evidence:
        return await asyncio.to_thread(self.read_now, question, hits)

    def read_now(self, question: str, hits: Sequence[Hit]) -> Evidence:
        """Blocking; ``read`` runs it off the event loop."""
        passages = list(hits[: self._max_passages])
        units = tuple(tuple(passage_units(h.text)) for h in passages)
        parts = question_parts(question)
        chosen = self._shortlist(question, parts, units)
        asked = (question, *parts)
        pairs = [
            (q, f"{context_of(passages[c.citation - 1], c.unit)}: {c.unit.text}")
            for c in chosen
            for q in asked
        ]
        logits = [float(out[0]) for out in self._model.run_batched(pairs)] if pairs else []
        width = len(asked)
        scored = [
            replace(
                c,
                score=logits[i * width],
                part_scores=tuple(logits[i * width + 1 : (i + 1) * width]),
            )
            for i, c in enumerate(chosen)
        ]
        scored.sort(key=lambda c: (-c.rank_score, c.citation, c.position))
        return Evidence(question, parts, units, tuple(scored))

    def _shortlist(
        self, question: str, parts: tuple[str, ...], units: Sequence[Sequence[Unit]]
    ) -> list[Candidate]:
        """The candidates the model reads: ranked by rarity-weighted word
        overlap with the question and with each of its parts, taken from
        those rankings in turn, so every part has its best candidates read."""
        candidates = [
            Candidate(n, i, u)
            for n, passage in enumerate(units, start=1)
            for i, u in enumerate(passage)
            if quotable(u)
        ]
        budget = max(1, self._max_pairs // (1 + len(parts)))
        stems = [_stems(f"{c.unit.heading or ''} {c.unit.text}") for c in candidates]
        overlaps = _overlaps(_stems(question), stems)
        candidates = [replace(c, overlap=o) for c, o in zip(candidates, overlaps, strict=True)]
        rankings = [_by_overlap(_stems(q), candidates, stems) for q in (question, *parts)]
        chosen: dict[tuple[int, int], Candidate] = {}
        for turn in zip(*rankings, strict=True):
            for c in turn:
                if len(chosen) < budget:
                    chosen.setdefault((c.citation, c.position), c)
        return list(chosen.values())


def _overlaps(wanted: set[str], stems: Sequence[set[str]]) -> list[float]:
    # Rarer question words say more about which unit answers it.
    frequency = {w: sum(w in s for s in stems) for w in wanted}
    total = len(stems)
    return [sum(math.log(1 + total / frequency[w]) for w in wanted & s) for s in stems]


def _by_overlap(
    wanted: set[str], candidates: Sequence[Candidate], stems: Sequence[set[str]]
) -> list[Candidate]:
    overlap = _overlaps(wanted, stems)
    order = sorted(
        range(len(candidates)),
        key=lambda i: (-overlap[i], candidates[i].citation, candidates[i].position),
    )
    return [candidates[i] for i in order]
