"""Reciprocal rank fusion: merge ranked lists by rank, not by score, so a
cosine similarity and a BM25 score never have to be put on one scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from shared.storage.vectorstore import Hit


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hit]], k: int = 60, stage: str = "fused"
) -> list[Hit]:
    """Each chunk scores ``sum(1 / (k + rank))`` over the lists it is in
    (rank from 1). Ties keep the order of first appearance. A fused hit
    keeps the stage scores it had in every list, and gains ``stage``'s."""
    scores: dict[str, float] = {}
    first_seen: dict[str, Hit] = {}
    stages: dict[str, dict[str, float]] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(hit.chunk_id, hit)
            stages.setdefault(hit.chunk_id, {}).update(hit.stages)
    ordered = sorted(first_seen, key=lambda chunk_id: -scores[chunk_id])
    return [
        replace(first_seen[c], stages=tuple(stages[c].items())).scored(stage, round(scores[c], 6))
        for c in ordered
    ]
