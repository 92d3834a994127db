import uuid

import pytest

from query.fusion import reciprocal_rank_fusion
from shared.storage.vectorstore import Hit

DOC = uuid.uuid4()


def _hits(*ids: str) -> list[Hit]:
    return [Hit(i, DOC, "f.md", n, f"text {i}", 1.0) for n, i in enumerate(ids)]


def test_hand_checked_fusion() -> None:
    dense = _hits("a", "b", "c")
    lexical = _hits("c", "a", "d")
    fused = reciprocal_rank_fusion([dense, lexical], k=60)
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [h.chunk_id for h in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62, abs=1e-6)
    assert fused[3].score == pytest.approx(1 / 63, abs=1e-6)


def test_agreement_beats_a_single_first_place() -> None:
    fused = reciprocal_rank_fusion([_hits("x", "y"), _hits("z", "y")], k=1)
    # y: 1/3 + 1/3 beats x and z: 1/2 each.
    assert [h.chunk_id for h in fused] == ["y", "x", "z"]


def test_ties_keep_first_appearance_and_empty_lists_are_fine() -> None:
    fused = reciprocal_rank_fusion([_hits("p"), [], _hits("q")])
    assert [h.chunk_id for h in fused] == ["p", "q"]
    assert reciprocal_rank_fusion([[], []]) == []


def test_a_fused_hit_keeps_every_lists_stage_score() -> None:
    """What POST /api/search shows: the dense and BM25 scores a chunk had
    in each list it was in, and the fused score that ranked it."""
    dense = [h.scored("dense", 0.9 - n / 10) for n, h in enumerate(_hits("a", "b"))]
    lexical = [h.scored("bm25", 7.5 - n) for n, h in enumerate(_hits("b", "c"))]
    fused = {h.chunk_id: h.stage_scores() for h in reciprocal_rank_fusion([dense, lexical], k=60)}
    assert fused["a"] == {"dense": 0.9, "fused": pytest.approx(1 / 61, abs=1e-6)}
    assert fused["b"] == {
        "dense": pytest.approx(0.8),
        "bm25": 7.5,
        "fused": pytest.approx(1 / 62 + 1 / 61, abs=1e-6),
    }
    assert fused["c"] == {"bm25": 6.5, "fused": pytest.approx(1 / 62, abs=1e-6)}
