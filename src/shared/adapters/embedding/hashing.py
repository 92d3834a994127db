"""The ``hashing`` embedder: no model, same vector in every process."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Sequence

from shared.text import terms


class HashingEmbedder:
    """Feature hashing of words and word pairs: honest about matching
    vocabulary, not meaning. A test option, never the default."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _slot(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dim, (1.0 if value >> 63 else -1.0)

    def embed_one(self, text: str) -> list[float]:
        words = terms(text)
        features = Counter(words)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
        vector = [0.0] * self.dim
        for feature, count in features.items():
            slot, sign = self._slot(feature)
            vector[slot] += sign * (1.0 + math.log(count))
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed, texts)

    async def embed_query(self, text: str) -> list[float]:
        return self.embed_one(text)
