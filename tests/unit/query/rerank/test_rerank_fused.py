"""A reranker's order fused with the retrieval order (RERANK_FUSION)."""

from __future__ import annotations

import uuid

import pytest

from query.rerank.cross_encoder import CrossEncoderReranker
from query.rerank.fused import RetrievalFused
from query.retrieval import Owner
from shared.adapters.onnx_models import MS_MARCO_MINILM_L12, OnnxTextModel
from shared.storage.vectorstore import Hit

DOC = uuid.uuid4()


def _hits(*ids: str) -> list[Hit]:
    return [Hit(i, DOC, "f.md", n, f"text {i}", 1.0 - n / 10) for n, i in enumerate(ids)]


class Fixed:
    """A reranker whose order is given: what the fusion does with it is under test."""

    name = "fixed"

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.calls: list[tuple[int, int, Owner | None]] = []

    async def rerank(
        self, question: str, hits: list[Hit], k: int, owner: Owner | None = None
    ) -> list[Hit]:
        self.calls.append((len(hits), k, owner))
        by_id = {h.chunk_id: h for h in hits}
        return [by_id[i] for i in self.order][:k]


async def test_hand_checked_fusion() -> None:
    fused = await RetrievalFused(Fixed(["c", "a", "d", "b"]), rrf_k=60).rerank(
        "q", _hits("a", "b", "c", "d"), k=4
    )
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62 + 1/64, d: 1/64 + 1/63
    assert [h.chunk_id for h in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62, abs=1e-6)
    assert fused[3].score == pytest.approx(1 / 64 + 1 / 63, abs=1e-6)


async def test_the_reranker_orders_every_candidate_and_k_cuts_after_fusion() -> None:
    inner = Fixed(["d", "c", "b", "a"])
    owner = Owner(uuid.uuid4(), uuid.uuid4())
    fused = await RetrievalFused(inner, rrf_k=1).rerank("q", _hits("a", "b", "c", "d"), 2, owner)
    assert inner.calls == [(4, 4, owner)]
    # k=1: every candidate scores 1/(1+r) + 1/(1+5-r); the ends (1/2 + 1/5) beat the middle.
    assert [h.chunk_id for h in fused] == ["a", "d"]


async def test_equal_scores_keep_the_retrieval_order() -> None:
    fused = await RetrievalFused(Fixed(["b", "a"]), rrf_k=60).rerank("q", _hits("a", "b"), 2)
    assert [h.chunk_id for h in fused] == ["a", "b"]


async def test_nothing_in_nothing_out() -> None:
    inner = Fixed([])
    assert await RetrievalFused(inner, rrf_k=60).rerank("q", [], 5) == []
    assert await RetrievalFused(Fixed(["a"]), rrf_k=60).rerank("q", _hits("a"), 0) == []
    assert inner.calls == []
    with pytest.raises(ValueError, match="rrf_k"):
        RetrievalFused(inner, rrf_k=0)


def _passages(*texts: str) -> list[Hit]:
    return [Hit(f"c{n}", DOC, "policy.md", n, text, 1.0) for n, text in enumerate(texts)]


async def test_with_the_bundled_cross_encoder() -> None:
    reranker = RetrievalFused(
        CrossEncoderReranker(OnnxTextModel.load(MS_MARCO_MINILM_L12)), rrf_k=60
    )
    assert reranker.name == "cross-encoder"
    question = "How many days do I have to submit a travel expense claim?"
    retrieved = _passages(
        "Travel bookings must be made through the approved agency portal.",
        "Submit your timesheet every Friday before 5pm.",
        "Expense claims for business travel must be submitted within 30 days of "
        "returning, with receipts attached.",
        "The travel policy covers economy flights for trips under six hours.",
    )
    ranked = await reranker.rerank(question, retrieved, k=4)
    # The model puts the answer first and the bookings line last, so the
    # answer (retrieved third) overtakes the first retrieved passage.
    assert ranked[0].chunk_id == "c2"
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    assert {h.chunk_id for h in ranked} == {h.chunk_id for h in retrieved}


async def test_the_rerankers_own_score_is_kept_beside_the_fused_one() -> None:
    hits = [h.scored("fused", h.score) for h in _hits("a", "b")]
    out = await RetrievalFused(Fixed(["b", "a"]), rrf_k=60).rerank("q", hits, 2)
    for hit in out:
        stages = hit.stage_scores()
        assert set(stages) == {"fused", "reranker", "reranked_fused"}
        assert hit.score == stages["reranked_fused"]  # what ranked it last
    by_id = {h.chunk_id: h.stage_scores() for h in out}
    assert by_id["a"]["fused"] == 1.0 and by_id["b"]["fused"] == 0.9
