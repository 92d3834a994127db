"""The one place that turns settings into an embedder."""

from __future__ import annotations

from shared.adapters.embedding.base import Embedder
from shared.adapters.embedding.hashing import HashingEmbedder
from shared.config import Settings


def build_embedder(settings: Settings) -> Embedder:
    # Imports are local so a process loads only the provider it uses.
    match settings.embedding_provider:
        case "hashing":
            return HashingEmbedder(settings.embedding_dim)
        case "onnx":
            from shared.adapters.embedding.onnx import OnnxEmbedder

            return OnnxEmbedder.bundled(batch_size=settings.embedding_batch_size)
        case "openai":
            from shared.adapters.embedding.openai import OpenAIEmbedder

            return OpenAIEmbedder.from_settings(settings)
        case "bedrock":
            from shared.adapters.embedding.bedrock import BedrockEmbedder

            return BedrockEmbedder.from_settings(settings)
