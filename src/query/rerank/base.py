"""What every reranker offers: a question and candidates in, the best k out."""

from __future__ import annotations

from typing import Protocol

from shared.storage.vectorstore import Hit


class Reranker(Protocol):
    name: str

    async def rerank(self, question: str, hits: list[Hit], k: int) -> list[Hit]:
        """At most ``k`` hits, best first, each with the score that ranked it."""
        ...
