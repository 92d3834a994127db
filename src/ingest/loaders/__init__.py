"""Bytes to sections of text, one loader per format.

Each loader is pure and CPU-bound (the worker calls it in a thread) and
raises ``UnsupportedDocument`` with a reason a person can act on: the file
is of an unknown type, not UTF-8, corrupt, encrypted, or has no text. What
they return is made safe in one place (``loaders.clean``) before anything
stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ingest.loaders import docx, html, markdown, pdf, text
from ingest.loaders.base import Section
from ingest.loaders.clean import clean
from shared.errors import UnsupportedDocument
from shared.formats import describe_supported

Loader = Callable[[str, bytes], list[Section]]

_LOADERS: dict[str, Loader] = {
    ".txt": text.load,
    ".text": text.load,
    ".md": markdown.load,
    ".markdown": markdown.load,
    ".html": html.load,
    ".htm": html.load,
    ".pdf": pdf.load,
    ".docx": docx.load,
}


def is_supported(filename: str) -> bool:
    return _suffix(filename) in _LOADERS


def load(filename: str, data: bytes) -> list[Section]:
    """The document's non-empty sections, in order."""
    loader = _LOADERS.get(_suffix(filename))
    if loader is None:
        raise UnsupportedDocument(
            f"{filename!r}: unsupported file type (supported: {describe_supported()})"
        )
    # Made safe here, once, whatever the loader: see loaders.clean.
    cleaned = (_cleaned(s) for s in loader(filename, data))
    sections = [s for s in cleaned if s.text.strip()]
    if not sections:
        raise UnsupportedDocument(f"{filename!r}: the document has no text")
    return sections


def _cleaned(section: Section) -> Section:
    heading = clean(section.heading) if section.heading is not None else None
    return replace(section, text=clean(section.text), heading=heading or None)


def _suffix(filename: str) -> str:
    # As the gateway's check sees it (the name ends with the suffix), so a name
    # like ".md" that the gateway let through is not refused here.
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot >= 0 else ""


__all__ = ["Section", "is_supported", "load"]
