"""Ingest worker: parse, chunk, embed and index uploaded documents."""
