"""The one place that turns settings into an embedder."""

from __future__ import annotations

from shared.config import Settings
from shared.embedding.base import Embedder
from shared.embedding.hashing import HashingEmbedder


def build_embedder(settings: Settings) -> Embedder:
    # Imports are local so a process loads only the provider it uses.
    match settings.embedding_provider:
        case "hashing":
            return HashingEmbedder(settings.embedding_dim)
        case "onnx":
            from shared.embedding.onnx import OnnxEmbedder

            return OnnxEmbedder.bundled(batch_size=settings.embedding_batch_size)
        case "openai":
            from shared.embedding.openai import OpenAIEmbedder

            return OpenAIEmbedder.from_settings(settings)
        case "bedrock":
            from shared.embedding.bedrock import BedrockEmbedder

            return BedrockEmbedder.from_settings(settings)
