"""Embeddings from AWS Bedrock: Amazon Titan or Cohere, through ``invoke_model``.

boto3 blocks, so every call runs in a thread. Titan embeds one text per call
(a few calls run at once); Cohere takes up to 96 texts per call.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared.adapters.providers import bedrock_client, bedrock_error
from shared.config import Settings
from shared.errors import RagError, Unavailable

DEFAULT_MODEL = "amazon.titan-embed-text-v2:0"
# Known sizes, so the collection name is settled before the first call.
KNOWN_DIMS = {
    "amazon.titan-embed-text-v2:0": 1024,
    "amazon.titan-embed-text-v1": 1536,
    "amazon.titan-embed-g1-text-02": 1536,
    "cohere.embed-english-v3": 1024,
    "cohere.embed-multilingual-v3": 1024,
}
_COHERE_BATCH = 96
# Enough to hide Titan's per-call latency, few enough to stay under the
# account's request quota (throttled calls are retried by botocore).
_TITAN_PARALLEL = 4


class BedrockEmbedder:
    def __init__(self, client: Any, model: str, dim: int) -> None:
        if "cohere.embed" in model:
            self._cohere = True
        elif "titan-embed" in model:
            self._cohere = False
        else:
            raise RagError(f"EMBEDDING_MODEL {model!r} is neither a Titan nor a Cohere embedder")
        self._client = client
        self._model = model
        self.name = f"bedrock:{model}"
        self.dim = dim

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockEmbedder:
        model = settings.embedding_model or DEFAULT_MODEL
        dim = KNOWN_DIMS.get(model, settings.embedding_dim)
        return cls(bedrock_client(settings), model, dim)

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self._cohere:
            return await self._cohere_embed(texts, "search_document")
        return await self._titan_embed(texts)

    async def embed_query(self, text: str) -> list[float]:
        if self._cohere:
            [vector] = await self._cohere_embed([text], "search_query")
        else:
            [vector] = await self._titan_embed([text])
        return vector

    async def _cohere_embed(self, texts: Sequence[str], input_type: str) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), _COHERE_BATCH):
            batch = list(texts[start : start + _COHERE_BATCH])
            # END: a passage longer than the model's window is cut, not refused.
            body = {"texts": batch, "input_type": input_type, "truncate": "END"}
            result = await asyncio.to_thread(self._invoke, body)
            embeddings = result.get("embeddings")
            if isinstance(embeddings, dict):  # when embedding types were named
                embeddings = embeddings.get("float")
            if not isinstance(embeddings, list) or len(embeddings) != len(batch):
                raise Unavailable(f"{self.name}: the reply does not hold one vector per text")
            vectors += [self._unit(vector) for vector in embeddings]
        return vectors

    async def _titan_embed(self, texts: Sequence[str]) -> list[list[float]]:
        gate = asyncio.Semaphore(_TITAN_PARALLEL)

        async def one(text: str) -> list[float]:
            async with gate:
                result = await asyncio.to_thread(self._invoke, self._titan_body(text))
            return self._unit(result.get("embedding"))

        return list(await asyncio.gather(*(one(text) for text in texts)))

    def _titan_body(self, text: str) -> dict[str, Any]:
        if "titan-embed-text-v2" in self._model:
            return {"inputText": text, "dimensions": self.dim, "normalize": True}
        return {"inputText": text}  # v1 takes neither a size nor normalisation

    def _invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.invoke_model(
                modelId=self._model,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            result = json.loads(response["body"].read())
        except (ClientError, BotoCoreError) as exc:
            raise bedrock_error(exc) from None
        except (KeyError, ValueError):
            raise Unavailable(f"{self.name}: the reply is not JSON") from None
        if not isinstance(result, dict):
            raise Unavailable(f"{self.name}: the reply is not a JSON object")
        return result

    def _unit(self, vector: object) -> list[float]:
        if not isinstance(vector, list):
            raise Unavailable(f"{self.name}: the reply holds no vector")
        if len(vector) != self.dim:
            raise Unavailable(
                f"{self.name}: the reply's vector has {len(vector)} dimensions, not {self.dim}:"
                " set EMBEDDING_DIM to the model's size"
            )
        try:
            values = [float(x) for x in vector]
        except (TypeError, ValueError):
            raise Unavailable(f"{self.name}: the reply's vector is not numbers") from None
        norm = math.sqrt(sum(x * x for x in values))
        # A zero or non-finite vector has no direction: cosine search would break on it.
        if not norm or not math.isfinite(norm):
            raise Unavailable(f"{self.name}: the reply's vector has no direction")
        return [x / norm for x in values]
