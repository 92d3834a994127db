"""Text to chunks, and chunk ids that make re-indexing idempotent."""

from __future__ import annotations

import hashlib
from pathlib import PurePath
from uuid import UUID

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter


def split(filename: str, text: str, *, size: int, overlap: int) -> list[str]:
    overlap = min(overlap, size // 2)
    if PurePath(filename).suffix.lower() in {".md", ".markdown"}:
        splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap
        )
    else:
        splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    return [chunk for chunk in splitter.split_text(text) if chunk.strip()]


def chunk_id(document_id: UUID, index: int, text: str) -> str:
    """Same document, position and content: same id, so a replay overwrites."""
    content = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{document_id}:{index}:{content}"
