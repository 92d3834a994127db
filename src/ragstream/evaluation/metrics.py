"""Ranking metrics over judged result lists, and their mean over a question set.

A ranking is a sequence of booleans, best first: ``ranked[i]`` says whether
the passage (or document) at rank ``i + 1`` is relevant. Gains are binary.

Pure standard library: no numpy, so the figures can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeAlias

HIT_DEPTHS = (1, 5)
NDCG_DEPTH = 10

SUMMARY_KEYS: tuple[str, ...] = (
    "hit@1", "hit@5", "mrr", "ndcg@10",
    "doc_hit@1", "doc_hit@5", "doc_mrr", "doc_ndcg@10",
    "p50_ms", "p95_ms", "n",
)  # fmt: skip


def hit_at(ranked: Sequence[bool], k: int) -> float:
    """1.0 if a relevant item is among the first ``k``, else 0.0."""
    return 1.0 if any(ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[bool]) -> float:
    """1 / the rank of the first relevant item; 0.0 when none is relevant."""
    return next((1.0 / rank for rank, relevant in enumerate(ranked, 1) if relevant), 0.0)


def _dcg(gains: Iterable[bool]) -> float:
    return sum(1.0 / math.log2(rank + 1) for rank, relevant in enumerate(gains, 1) if relevant)


def ndcg_at(ranked: Sequence[bool], k: int, n_relevant: int) -> float:
    """Normalised discounted cumulative gain of the first ``k`` items, binary
    gains, a ``log2(rank + 1)`` discount.

    The ideal ranking puts ``min(n_relevant, k)`` relevant items first. If the
    ranking holds more relevant items than ``n_relevant`` (one gold quote cut
    across two overlapping chunks makes both relevant), the ideal holds that
    many instead, so the score never exceeds 1 and a second copy of the same
    passage lower down is not a free bonus.
    """
    ideal_count = min(max(n_relevant, sum(ranked)), k)
    if ideal_count <= 0:
        return 0.0
    return _dcg(ranked[:k]) / _dcg([True] * ideal_count)


def document_ranking(documents: Iterable[tuple[str, bool]]) -> list[bool]:
    """Per-passage ``(document, relevant)`` pairs to a ranking of documents:
    a document counts at the rank of its first passage; later passages from a
    document already seen are skipped."""
    seen: set[str] = set()
    ranking: list[bool] = []
    for name, relevant in documents:
        if name not in seen:
            seen.add(name)
            ranking.append(relevant)
    return ranking


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0..1) quantile, interpolating linearly between the
    closest ranks (numpy's default method); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Outcome(NamedTuple):
    """One question's judged results."""

    passages: Sequence[bool]
    """Whether each retrieved passage is relevant, best first."""
    documents: Sequence[tuple[str, bool]]
    """Each retrieved passage's document and whether that document is gold."""
    latency: float
    """Seconds the question took."""
    n_gold: int
    """How many gold passages the question has."""
    n_gold_documents: int | None = None
    """How many distinct gold documents; ``None``: estimated (see ``summarise``)."""


#: What ``summarise`` takes per question: an ``Outcome``, or the same first
#: four fields as a plain tuple.
Result: TypeAlias = Outcome | tuple[Sequence[bool], Sequence[tuple[str, bool]], float, int]


def _outcome(result: Result) -> Outcome:
    if isinstance(result, Outcome):
        return result
    passages, documents, latency, n_gold = result
    return Outcome(passages, documents, latency, n_gold)


def _gold_documents(outcome: Outcome, ranking: Sequence[bool]) -> int:
    if outcome.n_gold_documents is not None:
        return outcome.n_gold_documents
    # Estimate: the distinct gold documents retrieved, at least one, and no
    # more than there are gold passages.
    return min(max(sum(ranking), 1), max(outcome.n_gold, 1))


def summarise(results: Iterable[Result]) -> dict[str, float]:
    """Means over questions of hit@1, hit@5, MRR and nDCG@10, for passages
    (``hit@1`` ...) and for documents (``doc_hit@1`` ...); the 50th and 95th
    latency percentiles in milliseconds (``p50_ms``, ``p95_ms``); the number
    of questions (``n``). No results give all zeros.

    Document-level nDCG needs the number of distinct gold documents: pass an
    ``Outcome`` with ``n_gold_documents``. For a plain tuple it is estimated
    as the number of distinct gold documents retrieved (at least 1, at most
    the number of gold passages), exact whenever every gold document was
    retrieved or all gold passages share one document.
    """
    outcomes = [_outcome(result) for result in results]
    columns: dict[str, list[float]] = {key: [] for key in SUMMARY_KEYS[:8]}
    for outcome in outcomes:
        documents = document_ranking(outcome.documents)
        for prefix, ranking, n_relevant in (
            ("", list(outcome.passages), outcome.n_gold),
            ("doc_", documents, _gold_documents(outcome, documents)),
        ):
            for k in HIT_DEPTHS:
                columns[f"{prefix}hit@{k}"].append(hit_at(ranking, k))
            columns[f"{prefix}mrr"].append(reciprocal_rank(ranking))
            columns[f"{prefix}ndcg@{NDCG_DEPTH}"].append(ndcg_at(ranking, NDCG_DEPTH, n_relevant))
    summary = {key: sum(values) / len(values) if values else 0.0 for key, values in columns.items()}
    latencies_ms = [outcome.latency * 1000.0 for outcome in outcomes]
    summary["p50_ms"] = percentile(latencies_ms, 0.50)
    summary["p95_ms"] = percentile(latencies_ms, 0.95)
    summary["n"] = float(len(outcomes))
    return summary
