"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint.

The vector store names its collection from ``name`` and ``dim`` when the
process starts, so the size must be known before the first call: OpenAI's own
models have known sizes, any other model's size comes from ``EMBEDDING_DIM``.
``ensure_ready`` embeds one probe string to check that size against the server
(and that the server answers) before any document depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from openai import APIError, AsyncOpenAI

from shared.adapters.providers import openai_client, openai_error
from shared.config import Settings
from shared.errors import Unavailable

DEFAULT_MODEL = "text-embedding-3-small"
KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_PROBE = "dimension probe"


class OpenAIEmbedder:
    def __init__(self, client: AsyncOpenAI, model: str, dim: int, batch_size: int) -> None:
        self._client = client
        self._model = model
        self._batch_size = batch_size
        # The model name alone, so every process agrees on the embedding space.
        self.name = f"openai:{model}"
        self.dim = dim

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        model = settings.embedding_model or DEFAULT_MODEL
        dim = KNOWN_DIMS.get(model, settings.embedding_dim)
        return cls(openai_client(settings), model, dim, settings.embedding_batch_size)

    async def ensure_ready(self) -> None:
        """Fail at start-up, not at the first document, when the server is
        down or its vectors are not ``dim`` long."""
        await self._embed([_PROBE])

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self._embed(list(texts[start : start + self._batch_size]))
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        [vector] = await self._embed([text])
        return vector

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        try:
            # "float" because servers other than OpenAI's may not know base64.
            response = await self._client.embeddings.create(
                model=self._model, input=texts, encoding_format="float"
            )
        except APIError as exc:
            raise openai_error(exc) from None
        return self._vectors(response, len(texts))

    def _vectors(self, response: Any, count: int) -> list[list[float]]:
        # The client builds replies without validating them: check the shape here.
        try:
            ordered = sorted(response.data, key=lambda item: item.index)
            raw = [[float(x) for x in item.embedding] for item in ordered]
        except (AttributeError, TypeError, ValueError):
            raise Unavailable(f"{self.name}: the server's reply holds no embeddings") from None
        if len(raw) != count:
            raise Unavailable(f"{self.name}: the server returned {len(raw)} vectors for {count}")
        sizes = {len(vector) for vector in raw} - {self.dim}
        if sizes:
            raise Unavailable(
                f"{self.name}: the server returned vectors of {sizes.pop()} dimensions, not"
                f" {self.dim}: set EMBEDDING_DIM to the model's size"
            )
        return [_unit(vector, self.name) for vector in raw]


def _unit(vector: list[float], name: str) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    # A zero or non-finite vector has no direction: cosine search would break on it.
    if not norm or not math.isfinite(norm):
        raise Unavailable(f"{name}: the server returned a vector with no direction")
    return [x / norm for x in vector]
