"""Rerankers: reorder retrieved candidates (RERANKING_METHOD: cross-encoder, mmr, llm)."""
