"""Sections to chunks, and chunk ids that make re-indexing idempotent.

A chunk never spans two sections, so its page and heading are exact: a
citation can say "page 3" and mean it. Sections are split with LangChain's
recursive splitter (Markdown-aware for Markdown), so chunks break at
headings, paragraphs and sentences before words. The text stays what the
document says: the heading is metadata, not prepended to the chunk.

Small sections (a heading and one line) stay chunks of their own rather than
being merged with the next: merging would give the merged text one heading
that is wrong for half of it, and a short chunk that matches a query well is
exactly what a citation should point to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePath
from uuid import UUID

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from ingest.loaders.base import Section


@dataclass(frozen=True)
class Piece:
    text: str
    page: int | None = None
    section: str | None = None


def _splitter(filename: str, size: int, overlap: int) -> RecursiveCharacterTextSplitter:
    overlap = min(overlap, size // 2)
    if PurePath(filename).suffix.lower() in {".md", ".markdown"}:
        return RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=size, chunk_overlap=overlap
        )
    return RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)


def split(filename: str, sections: list[Section], *, size: int, overlap: int) -> list[Piece]:
    splitter = _splitter(filename, size, overlap)
    return [
        Piece(text, page=section.page, section=section.heading)
        for section in sections
        for text in splitter.split_text(section.text)
        if text.strip()
    ]


def chunk_id(document_id: UUID, index: int, text: str) -> str:
    """Same document, position and content: same id, so a replay overwrites."""
    content = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{document_id}:{index}:{content}"
