"""What every embedder offers: text in, unit vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Embedder(Protocol):
    """``name`` identifies the embedding space (model and dimension): vectors
    of two names are never compared or stored together."""

    name: str
    dim: int

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Passages to index. Local models run off the event loop."""
        ...

    async def embed_query(self, text: str) -> list[float]:
        """A question to search with (some models embed questions differently)."""
        ...
