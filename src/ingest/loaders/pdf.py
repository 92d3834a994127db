"""PDF: a section per page, numbered from 1, so answers can cite the page.

Pages without text (blank, or scanned images) give no section but keep their
number. A page whose content cannot be decoded is skipped like a blank one so
the rest of the document stays searchable; only if no page can be read at all
is the file refused as corrupt.
"""

from __future__ import annotations

import io

from pypdf import PdfReader

from ingest.loaders.base import Section
from ingest.loaders.limits import ParseLimits
from shared.errors import UnsupportedDocument

# pypdf reports damage with many exception types (its own, and ValueError,
# KeyError, NotImplementedError, zlib.error, RecursionError, ...) depending on
# where the file breaks; for a file someone uploaded they all mean "corrupt".
_DAMAGE = Exception


def load(filename: str, data: bytes, limits: ParseLimits | None = None) -> list[Section]:
    limits = limits or ParseLimits()
    reader = _open(filename, data)
    try:
        count = len(reader.pages)
    except _DAMAGE as exc:
        raise _corrupt(filename, exc) from None
    if count > limits.pdf_max_pages:
        raise UnsupportedDocument(
            f"{filename!r}: the PDF has {count} pages (limit {limits.pdf_max_pages})"
        )
    sections: list[Section] = []
    unreadable = 0
    for number in range(1, count + 1):
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except _DAMAGE:
            unreadable += 1
            continue
        if len(text) > limits.pdf_max_page_chars:
            raise UnsupportedDocument(
                f"{filename!r}: page {number} of the PDF holds more than"
                f" {limits.pdf_max_page_chars:,} characters of text"
            )
        # Broken font maps can yield NULs, which PostgreSQL cannot store in text.
        text = text.replace("\x00", "")
        if text.strip():
            sections.append(Section(text.strip(), page=number))
    if sections:
        return sections
    if unreadable:
        reason = f"{unreadable} of {count} pages could not be read"
        raise UnsupportedDocument(f"{filename!r}: the PDF is corrupt ({reason})")
    raise UnsupportedDocument(
        f"{filename!r}: the PDF has no text (scanned pages need OCR before they can be indexed)"
    )


def _open(filename: str, data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except _DAMAGE as exc:
        raise _corrupt(filename, exc) from None
    if not encrypted:
        return reader
    # Many PDFs are "encrypted" with an empty password only, to set permissions.
    try:
        unlocked = reader.decrypt("")
    except _DAMAGE as exc:
        raise UnsupportedDocument(
            f"{filename!r}: the PDF is encrypted and cannot be opened ({_reason(exc)})"
        ) from None
    if not unlocked:
        raise UnsupportedDocument(f"{filename!r}: the PDF is encrypted with a password")
    return reader


def _corrupt(filename: str, exc: BaseException) -> UnsupportedDocument:
    return UnsupportedDocument(f"{filename!r}: the PDF is corrupt ({_reason(exc)})")


def _reason(exc: BaseException) -> str:
    return str(exc)[:200] or type(exc).__name__
