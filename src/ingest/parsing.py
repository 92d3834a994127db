"""Bytes to text, for the formats the ingest worker understands."""

from __future__ import annotations

from pathlib import PurePath

from shared.errors import UnsupportedDocument

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown"})


def is_supported(filename: str) -> bool:
    return PurePath(filename).suffix.lower() in TEXT_SUFFIXES


def parse(filename: str, data: bytes) -> str:
    """CPU-bound for large files: call it off the event loop."""
    if not is_supported(filename):
        raise UnsupportedDocument(f"{filename!r}: unsupported file type")
    if b"\x00" in data[:8192]:
        raise UnsupportedDocument(f"{filename!r}: binary content in a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedDocument(
            f"{filename!r}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    if not text.strip():
        raise UnsupportedDocument(f"{filename!r}: the document has no text")
    return text
