"""What a file may make a parser do, checked before the parser reads it:
a DOCX (a zip) may not expand past a size or a ratio, a PDF may not have
more pages than a limit or more text on a page, an HTML page may not nest
deeper than a limit. Each refusal says which limit and by how much.

The child process a parse runs in (``ingest.parser_pool``) bounds memory and
time whatever gets past these; the checks here make the common bombs fail
early, cheaply and with a precise reason.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from shared.errors import UnsupportedDocument

_MB = 1024 * 1024
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    zip_max_entries: int = 10_000
    zip_max_uncompressed_mb: int = 200
    zip_max_ratio: int = 100
    pdf_max_pages: int = 2_000
    pdf_max_page_chars: int = 200_000
    html_max_depth: int = 1_000
    html_max_mb: int = 20


def check_zip(filename: str, data: bytes, limits: ParseLimits) -> None:
    """Refuse a zip whose parts would expand past the limits: by what they
    declare, and by what they really inflate to (a header can lie)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnsupportedDocument(f"{filename!r}: not a readable DOCX file ({exc})") from None
    if len(entries) > limits.zip_max_entries:
        raise UnsupportedDocument(
            f"{filename!r}: the DOCX has {len(entries)} parts (limit {limits.zip_max_entries})"
        )
    budget = limits.zip_max_uncompressed_mb * _MB
    declared = sum(e.file_size for e in entries)
    if declared > budget:
        raise _too_big(filename, declared, limits)
    total = 0
    with archive:
        for entry in entries:
            total += _inflated_size(filename, archive, entry, budget - total, limits)


def _inflated_size(
    filename: str, archive: zipfile.ZipFile, entry: zipfile.ZipInfo, left: int, limits: ParseLimits
) -> int:
    """The part's real size, read in chunks and never past what is left."""
    size = 0
    try:
        with archive.open(entry) as part:
            while chunk := part.read(_READ_CHUNK):
                size += len(chunk)
                if size > left:
                    raise _too_big(filename, size, limits)
                if size > max(entry.compress_size, 1) * limits.zip_max_ratio and size > _MB:
                    raise UnsupportedDocument(
                        f"{filename!r}: a part of the DOCX is compressed more than"
                        f" {limits.zip_max_ratio}:1 ({entry.filename[:80]!r})"
                    )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UnsupportedDocument(f"{filename!r}: not a readable DOCX file ({exc})") from None
    return size


def _too_big(filename: str, size: int, limits: ParseLimits) -> UnsupportedDocument:
    return UnsupportedDocument(
        f"{filename!r}: the DOCX expands to more than {limits.zip_max_uncompressed_mb} MB"
        f" ({size // _MB} MB or more)"
    )


# Tags that never hold others, and those a browser closes at the next
# sibling (an unclosed <p> or <li> is not nesting).
_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr "
    "p li dt dd tr td th option".split()
)
_TAG = re.compile(rb"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)[^>]*?(/?)>")


def check_html(filename: str, data: bytes, limits: ParseLimits) -> None:
    """Refuse a page larger than its limit (a tree costs many times the
    page's bytes) or nested deeper than the limit, by a scan of its tags
    (linear, before any tree is built)."""
    if len(data) > limits.html_max_mb * _MB:
        raise UnsupportedDocument(
            f"{filename!r}: the HTML page is larger than {limits.html_max_mb} MB"
        )
    depth = deepest = 0
    for match in _TAG.finditer(data):
        closing, name, self_closing = match.groups()
        if name.lower().decode("ascii", "replace") in _VOID or self_closing:
            continue
        if closing:
            depth = max(0, depth - 1)
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limits.html_max_depth:
                raise UnsupportedDocument(
                    f"{filename!r}: the HTML nests more than {limits.html_max_depth} elements deep"
                )
