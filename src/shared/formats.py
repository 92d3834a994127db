"""The document formats ragstream reads: one list for the gateway, which
refuses others at upload, and the ingest worker, which parses them."""

from __future__ import annotations

# One table so the suffixes and the description people read cannot drift apart.
_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("plain text", (".txt", ".text")),
    ("Markdown", (".md", ".markdown")),
    ("HTML", (".html", ".htm")),
    ("PDF", (".pdf",)),
    ("Word", (".docx",)),
)

SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(s for _, suffixes in _FORMATS for s in suffixes)


def describe_supported() -> str:
    """E.g. ``plain text (.txt, .text), Markdown (.md, .markdown), …``."""
    return ", ".join(f"{name} ({', '.join(suffixes)})" for name, suffixes in _FORMATS)
