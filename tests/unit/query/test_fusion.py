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
