"""Ranking metrics and their summary, on examples computed by hand."""

from __future__ import annotations

import math

import pytest

from ragstream.evaluation.metrics import (
    ANSWER_KEYS,
    Outcome,
    Reply,
    document_ranking,
    hit_at,
    ndcg_at,
    percentile,
    rate,
    reciprocal_rank,
    summarise,
    summarise_answers,
)

T, F = True, False


def test_hit_at_counts_a_relevant_item_within_the_first_k() -> None:
    assert hit_at([F, F, T], 1) == 0.0
    assert hit_at([F, F, T], 2) == 0.0
    assert hit_at([F, F, T], 3) == 1.0
    assert hit_at([T], 5) == 1.0
    assert hit_at([], 5) == 0.0


def test_reciprocal_rank_is_one_over_the_first_relevant_rank() -> None:
    assert reciprocal_rank([T, T]) == 1.0
    assert reciprocal_rank([F, F, F, T, T]) == 0.25
    assert reciprocal_rank([F, F]) == 0.0
    assert reciprocal_rank([]) == 0.0


def test_ndcg_one_relevant_item() -> None:
    assert ndcg_at([T, F, F], 10, 1) == 1.0
    # DCG = 1/log2(3); ideal = 1.
    assert ndcg_at([F, T, F], 10, 1) == pytest.approx(1 / math.log2(3))
    assert ndcg_at([F, F, F], 10, 1) == 0.0


def test_ndcg_two_relevant_items_and_a_miss() -> None:
    # Ranks 1 and 3 relevant, rank 2 a miss: DCG = 1 + 1/log2(4) = 1.5;
    # ideal = 1 + 1/log2(3) = 1.6309...; nDCG = 0.9197...
    assert ndcg_at([T, F, T], 10, 2) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at([T, F, T], 10, 2) == pytest.approx(0.91972, abs=1e-5)
    # Only one of the two gold passages retrieved, at rank 2: 0.6309 / 1.6309.
    assert ndcg_at([F, T, F], 10, 2) == pytest.approx(0.38685, abs=1e-5)


def test_ndcg_cuts_at_k_and_caps_the_ideal_at_k() -> None:
    # The relevant item sits at rank 3, beyond k = 2.
    assert ndcg_at([F, F, T], 2, 1) == 0.0
    # Three gold passages but k = 1: the ideal holds one item, and rank 1 is it.
    assert ndcg_at([T, F, F], 1, 3) == 1.0


def test_ndcg_never_exceeds_one_when_two_chunks_hold_one_quote() -> None:
    # One gold passage split over two overlapping chunks, both retrieved.
    assert ndcg_at([T, T], 10, 1) == pytest.approx(1.0)
    # ... retrieved at ranks 2 and 5: the ideal has two relevant items, so the
    # score is 1/log2(3) + 1/log2(6) over 1 + 1/log2(3), not a perfect score.
    expected = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert ndcg_at([F, T, F, F, T], 10, 1) == pytest.approx(expected)
    assert ndcg_at([F, T, F, F, T], 10, 1) < 1.0


def test_ndcg_without_relevant_items_is_zero() -> None:
    assert ndcg_at([F, F], 10, 0) == 0.0
    assert ndcg_at([], 10, 1) == 0.0


def test_document_ranking_counts_each_document_at_its_first_passage() -> None:
    documents = [("a.md", F), ("a.md", F), ("b.md", T), ("a.md", F), ("b.md", T), ("c.md", F)]
    assert document_ranking(documents) == [F, T, F]


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) == 0.0


def test_summarise_means_over_questions_at_both_levels() -> None:
    results = [
        # Passage hit at rank 2; its document also owns rank 1's passage, so the
        # document ranking is [a.md: True] and the document is found at rank 1.
        (
            [F, T, F],
            [("a.md", T), ("a.md", T), ("b.md", F)],
            0.100,
            1,
        ),
        # Nothing relevant at either level.
        ([F, F], [("c.md", F), ("d.md", F)], 0.300, 1),
    ]
    summary = summarise(results)
    assert summary["hit@1"] == 0.0
    assert summary["hit@5"] == 0.5
    assert summary["mrr"] == pytest.approx(0.25)
    assert summary["ndcg@10"] == pytest.approx(0.5 / math.log2(3))
    assert summary["doc_hit@1"] == 0.5
    assert summary["doc_hit@5"] == 0.5
    assert summary["doc_mrr"] == 0.5
    assert summary["doc_ndcg@10"] == 0.5
    assert summary["p50_ms"] == pytest.approx(200.0)
    assert summary["p95_ms"] == pytest.approx(290.0)
    assert summary["n"] == 2.0


def test_summarise_document_level_skips_passages_of_a_document_already_seen() -> None:
    # Passages from x.md fill ranks 1-5; the gold document y.md is the 6th
    # passage but the 2nd distinct document: a document hit@5, not a passage one.
    passages = [F] * 5 + [T]
    documents = [("x.md", F)] * 5 + [("y.md", T)]
    summary = summarise([(passages, documents, 0.0, 1)])
    assert summary["hit@5"] == 0.0
    assert summary["mrr"] == pytest.approx(1 / 6)
    assert summary["doc_hit@1"] == 0.0
    assert summary["doc_hit@5"] == 1.0
    assert summary["doc_mrr"] == 0.5
    assert summary["doc_ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_summarise_uses_the_gold_document_count_when_given() -> None:
    # Two gold documents, only one retrieved (rank 1).
    documents = [("a.md", T), ("z.md", F)]
    exact = summarise([Outcome([T, F], documents, 0.0, 2, n_gold_documents=2)])
    assert exact["doc_ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # Two gold passages in one document: that document at rank 1 is perfect.
    one_document = summarise([Outcome([T, F], documents, 0.0, 2, n_gold_documents=1)])
    assert one_document["doc_ndcg@10"] == 1.0
    # A plain tuple estimates the count from the relevant documents retrieved.
    assert summarise([([T, F], documents, 0.0, 2)])["doc_ndcg@10"] == 1.0


def test_summarise_of_nothing_is_all_zeros() -> None:
    summary = summarise([])
    assert set(summary) >= {
        "hit@1",
        "hit@5",
        "mrr",
        "ndcg@10",
        "doc_hit@1",
        "doc_hit@5",
        "doc_mrr",
        "doc_ndcg@10",
        "p50_ms",
        "p95_ms",
        "n",
    }
    assert all(value == 0.0 for value in summary.values())


# --- answers -----------------------------------------------------------------


def _reply(
    answerable: bool = True,
    grounded: bool = True,
    fact: bool = False,
    cited_gold: bool = False,
    latency: float = 0.0,
) -> Reply:
    return Reply(answerable, grounded, fact, cited_gold, latency)


def test_rate_is_the_fraction_true_and_nan_for_nothing() -> None:
    assert rate([T, F, F, T]) == 0.5
    assert rate([F]) == 0.0
    assert math.isnan(rate([]))


def test_summarise_answers_counts_each_rate_over_its_own_questions() -> None:
    replies = [
        _reply(fact=T, cited_gold=T, latency=0.1),  # answered, right
        _reply(fact=T, cited_gold=F, latency=0.2),  # answered, cites another page
        _reply(fact=F, cited_gold=F, latency=0.3),  # answered, wrong
        _reply(grounded=F, latency=0.4),  # declined though answerable
        _reply(answerable=F, grounded=F, latency=0.5),  # declined, rightly
        _reply(answerable=F, grounded=T, latency=0.6),  # answered anyway
        _reply(answerable=F, grounded=F, latency=0.7),
    ]
    summary = summarise_answers(replies)
    assert set(summary) == set(ANSWER_KEYS)
    assert summary["fact"] == pytest.approx(2 / 4)
    assert summary["cited_gold"] == pytest.approx(1 / 3)  # the declined one is not counted
    assert summary["false_decline"] == pytest.approx(1 / 4)
    assert summary["declined"] == pytest.approx(2 / 3)
    # Latency over every question asked, unanswerable ones too.
    assert summary["p50_ms"] == pytest.approx(400.0)
    assert summary["p95_ms"] == pytest.approx(670.0)
    assert (
        summary["n"],
        summary["n_answerable"],
        summary["n_answered"],
        summary["n_unanswerable"],
    ) == (7.0, 4.0, 3.0, 3.0)


def test_a_declined_answer_holding_a_fact_is_a_fact_miss() -> None:
    # "The documents do not say whether 8pm ...": the fact is there, the answer is not.
    summary = summarise_answers([_reply(grounded=F, fact=T), _reply(fact=T)])
    assert summary["fact"] == 0.5
    assert summary["false_decline"] == 0.5


def test_cited_gold_is_only_over_answered_questions() -> None:
    summary = summarise_answers([_reply(cited_gold=T), _reply(grounded=F), _reply(grounded=F)])
    assert summary["cited_gold"] == 1.0
    # Nothing answered: no figure, not 0.
    assert math.isnan(summarise_answers([_reply(grounded=F)])["cited_gold"])


def test_missing_denominators_are_nan() -> None:
    only_answerable = summarise_answers([_reply(fact=T, cited_gold=T)])
    assert math.isnan(only_answerable["declined"])
    assert only_answerable["fact"] == 1.0
    only_unanswerable = summarise_answers([_reply(answerable=F, grounded=F)])
    for key in ("fact", "cited_gold", "false_decline"):
        assert math.isnan(only_unanswerable[key]), key
    assert only_unanswerable["declined"] == 1.0
    nothing = summarise_answers([])
    for key in ("fact", "cited_gold", "declined", "false_decline", "p50_ms", "p95_ms"):
        assert math.isnan(nothing[key]), key
    assert nothing["n"] == 0.0
