"""Embedders: text in, unit vectors out.

``HashingEmbedder`` is the offline default of the walking skeleton. It is
honest about what it is: feature hashing of words and word pairs, so it
matches vocabulary, not meaning. It needs no model download and gives the
same vector for the same text in every process.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import Counter
from typing import Protocol

from shared.config import Settings

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset(
    """a an and are as at be but by can do does for from has have how i in is it its of on or
    our that the their there these this to was we were what when where which who why will
    with you your""".split()
)


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """CPU-bound: call it off the event loop."""
        ...


def terms(text: str) -> list[str]:
    """Lower-cased content words, in order."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class HashingEmbedder:
    name = "hashing"

    def __init__(self, dim: int) -> None:
        self.dim = dim

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

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(t) for t in texts]


def build_embedder(settings: Settings) -> Embedder:
    return HashingEmbedder(settings.embedding_dim)
