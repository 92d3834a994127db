"""What a loader returns: the document's text in sections that know where they are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """A run of text from one place in the document: a PDF page, or the part of
    a Markdown/HTML/DOCX document under one heading."""

    text: str
    page: int | None = None
    heading: str | None = None
