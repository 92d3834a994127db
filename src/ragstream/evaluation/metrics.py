"""Ranking metrics over judged result lists, and their mean over a question set;
answer-level rates over judged answers.

A ranking is a sequence of booleans, best first: ``ranked[i]`` says whether
the passage (or document) at rank ``i + 1`` is relevant. Gains are binary.

An answer is judged by ``Reply``: whether the system answered or declined,
whether the answer holds a fact, whether it cites a gold page. A rate with no
question to count over is NaN, never a made-up 0 or 1.

Pure standard library: no numpy, so the figures can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeAlias

HIT_DEPTHS = (1, 5)
NDCG_DEPTH = 10

RANKING_KEYS: tuple[str, ...] = (
    "hit@1", "hit@5", "mrr", "ndcg@10",
    "doc_hit@1", "doc_hit@5", "doc_mrr", "doc_ndcg@10",
)  # fmt: skip
SUMMARY_KEYS: tuple[str, ...] = (*RANKING_KEYS, "p50_ms", "p95_ms", "n")
ANSWER_KEYS: tuple[str, ...] = (
    "fact", "cited_gold", "declined", "false_decline",
    "p50_ms", "p95_ms", "n", "n_answerable", "n_answered", "n_unanswerable",
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
    columns: dict[str, list[float]] = {key: [] for key in RANKING_KEYS}
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


class Reply(NamedTuple):
    """One question's answer, judged."""

    answerable: bool
    """Whether the corpus answers the question (it has gold passages)."""
    grounded: bool
    """Whether the system answered; ``False``: it declined ("not in your documents")."""
    fact: bool
    """Whether the answer's text holds one of the question's facts (``contains_fact``)."""
    cited_gold: bool
    """Whether the answer cites a source from a gold document."""
    latency: float
    """Seconds the question took."""


def rate(flags: Sequence[bool]) -> float:
    """The fraction of ``flags`` that are true; NaN when there are none."""
    return sum(flags) / len(flags) if flags else math.nan


def summarise_answers(replies: Iterable[Reply]) -> dict[str, float]:
    """Answer-level rates over questions:

    - ``fact``: answerable questions whose answer holds a fact (a declined
      answer holds none, whatever its text);
    - ``cited_gold``: answerable questions answered (grounded) whose answer
      cites a gold page; a declined one cites nothing and is not counted;
    - ``declined``: unanswerable questions the system declined;
    - ``false_decline``: answerable questions the system declined;
    - ``p50_ms``, ``p95_ms``: latency percentiles over every question;
    - ``n``, ``n_answerable``, ``n_answered``, ``n_unanswerable``: the counts
      behind them.

    A rate with no question to count over (no unanswerable question in the
    run, say) is NaN.
    """
    replies = list(replies)
    answerable = [r for r in replies if r.answerable]
    answered = [r for r in answerable if r.grounded]
    unanswerable = [r for r in replies if not r.answerable]
    latencies_ms = [r.latency * 1000.0 for r in replies]
    return {
        # A declined answer may still quote a fact ("the documents do not say
        # whether sort_keys ..."): it did not answer, so it does not count.
        "fact": rate([r.fact and r.grounded for r in answerable]),
        "cited_gold": rate([r.cited_gold for r in answered]),
        "declined": rate([not r.grounded for r in unanswerable]),
        "false_decline": rate([not r.grounded for r in answerable]),
        "p50_ms": percentile(latencies_ms, 0.50) if replies else math.nan,
        "p95_ms": percentile(latencies_ms, 0.95) if replies else math.nan,
        "n": float(len(replies)),
        "n_answerable": float(len(answerable)),
        "n_answered": float(len(answered)),
        "n_unanswerable": float(len(unanswerable)),
    }
