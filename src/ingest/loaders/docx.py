"""DOCX: paragraphs and tables in document order, a section per heading
(Word's Title and Heading 1-9 styles). A table row reads as its cells joined
by `` | ``; a merged cell is read once."""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.loaders.base import Section
from ingest.loaders.headings import HeadingPath
from shared.errors import UnsupportedDocument

_HEADING_STYLE = re.compile(r"^(?:Heading|Title)\s*(\d*)$", re.IGNORECASE)


def load(filename: str, data: bytes) -> list[Section]:
    try:
        return _read(data)
    # A damaged file can fail anywhere in zipfile, zlib, lxml or python-docx
    # itself, with their own exception types; all of them mean the same here.
    except Exception as exc:
        reason = str(exc)[:200] or type(exc).__name__
        raise UnsupportedDocument(f"{filename!r}: not a readable DOCX file ({reason})") from None


def _read(data: bytes) -> list[Section]:
    document = docx.Document(io.BytesIO(data))
    sections: list[Section] = []
    path = HeadingPath()
    parts: list[str] = []

    def close() -> None:
        body = "\n".join(parts).strip()
        if body:
            sections.append(Section(body, heading=path.current))
        parts.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts.extend(_rows(block))
            continue
        text = block.text.strip()
        if not text:
            continue
        level = _heading_level(block)
        if level is not None:
            close()
            path.enter(level, text)
        parts.append(text)
    close()
    return sections


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style
    match = _HEADING_STYLE.match(style.name or "") if style is not None else None
    return int(match.group(1) or 1) if match else None


def _rows(table: Table) -> list[str]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A merged cell is the same XML element in every grid column it spans.
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows
