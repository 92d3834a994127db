"""What every reranker offers: a question and candidates in, the best k out."""

from __future__ import annotations

from typing import Protocol

from query.retrieval import Owner
from shared.storage.vectorstore import Hit

# The stage name a reranker's own score is recorded under (Hit.stages).
RERANKER_STAGE = "reranker"


class Reranker(Protocol):
    name: str

    async def rerank(
        self, question: str, hits: list[Hit], k: int, owner: Owner | None = None
    ) -> list[Hit]:
        """At most ``k`` hits, best first, each with the score that ranked it.
        ``owner`` (whose hits they are) lets a reranker read what the stores
        hold about them instead of computing it again."""
        ...
