"""Bytes to sections of text, one loader per format.

Each loader is pure and CPU-bound (the worker runs it in a child process
with memory and time limits, ``ingest.parser_pool``) and raises
``UnsupportedDocument`` with a reason a person can act on: the file is of an
unknown type, not UTF-8, corrupt, encrypted, past a limit
(``loaders.limits``: a DOCX that would expand too far, a PDF with too many
pages, an HTML page nested too deep), or has no text. What they return is
made safe in one place (``loaders.clean``) before anything stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from ingest.loaders import docx, html, markdown, pdf, text
from ingest.loaders.base import Section
from ingest.loaders.clean import clean
from ingest.loaders.limits import ParseLimits, check_html, check_zip
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


def load(filename: str, data: bytes, limits: ParseLimits | None = None) -> list[Section]:
    """The document's non-empty sections, in order."""
    limits = limits or ParseLimits()
    suffix = _suffix(filename)
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedDocument(
            f"{filename!r}: unsupported file type (supported: {describe_supported()})"
        )
    if suffix == ".docx":
        check_zip(filename, data, limits)
    elif suffix in (".html", ".htm"):
        check_html(filename, data, limits)
    elif suffix == ".pdf":
        loader = partial(pdf.load, limits=limits)
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


__all__ = ["ParseLimits", "Section", "is_supported", "load"]
