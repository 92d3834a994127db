"""What a file may make a parser do, checked before it is parsed."""

from __future__ import annotations

import io
import zipfile

import pytest

from ingest.loaders import ParseLimits, load
from ingest.loaders.limits import check_html, check_zip
from shared.errors import UnsupportedDocument
from tests.support.documents import docx_bytes, pdf_bytes

SMALL = ParseLimits(
    zip_max_uncompressed_mb=5,
    zip_max_ratio=100,
    pdf_max_pages=3,
    pdf_max_page_chars=2000,
    html_max_depth=50,
)


def _with_part(docx: bytes, name: str, content: bytes, *, declared: int | None = None) -> bytes:
    """The DOCX with one more part; ``declared`` forges its size in the header."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr(zipfile.ZipInfo(name), content, compress_type=zipfile.ZIP_DEFLATED)
    data = out.getvalue()
    if declared is not None:
        data = _forge_sizes(data, name, declared)
    return data


def _forge_sizes(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the uncompressed size of ``name`` in its central directory entry."""
    raw = bytearray(data)
    encoded = name.encode()
    at = raw.rfind(b"PK\x01\x02")  # the last central entry is ours
    assert raw[at + 46 : at + 46 + len(encoded)] == encoded
    raw[at + 24 : at + 28] = size.to_bytes(4, "little")
    return bytes(raw)


def test_an_ordinary_docx_passes() -> None:
    check_zip("a.docx", docx_bytes([("p", "Hello there.")]), SMALL)


def test_a_docx_declaring_more_than_the_limit_is_refused_before_reading() -> None:
    bomb = _with_part(docx_bytes([("p", "x")]), "word/big.bin", b"0" * 1000, declared=50 << 20)
    with pytest.raises(UnsupportedDocument, match="expands to more than 5 MB"):
        check_zip("bomb.docx", bomb, SMALL)


def test_a_docx_that_lies_about_its_size_is_refused() -> None:
    # 8 MB of zeros declared as 1 KB: zipfile inflates only what a part
    # declares, so the lie is a damaged part, never 8 MB in memory.
    bomb = _with_part(docx_bytes([("p", "x")]), "word/big.bin", b"\0" * (8 << 20), declared=1024)
    with pytest.raises(UnsupportedDocument, match=r"not a readable DOCX file \(Bad CRC-32"):
        check_zip("bomb.docx", bomb, SMALL)


def test_a_part_compressed_past_the_ratio_is_refused() -> None:
    ratio = ParseLimits(zip_max_uncompressed_mb=100, zip_max_ratio=20)
    bomb = _with_part(docx_bytes([("p", "x")]), "word/zeros.bin", b"\0" * (3 << 20))
    with pytest.raises(UnsupportedDocument, match="compressed more than 20:1"):
        check_zip("bomb.docx", bomb, ratio)


def test_too_many_pages_or_too_much_text_on_a_page_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="has 4 pages \\(limit 3\\)"):
        load("long.pdf", pdf_bytes(["a", "b", "c", "d"]), SMALL)
    with pytest.raises(UnsupportedDocument, match="page 2 of the PDF holds more than 2,000"):
        load("dense.pdf", pdf_bytes(["fine", "word " * 1000]), SMALL)
    assert [s.page for s in load("ok.pdf", pdf_bytes(["one", "two"]), SMALL)] == [1, 2]


def test_html_nested_past_the_limit_is_refused_and_sloppy_html_is_not() -> None:
    deep = b"<html><body>" + b"<div>" * 60 + b"deep" + b"</div>" * 60 + b"</body></html>"
    with pytest.raises(UnsupportedDocument, match="nests more than 50 elements deep"):
        check_html("deep.html", deep, SMALL)
    # Unclosed paragraphs, list items and cells, void and self-closed tags do not nest.
    sloppy = b"<ul>" + b"<li><p>item<br><img src=x><span/>" * 500 + b"</ul>"
    check_html("sloppy.html", sloppy, SMALL)
    with pytest.raises(UnsupportedDocument, match="nests more than 50"):
        load("deep.html", deep, SMALL)


def test_an_html_page_past_its_size_limit_is_refused() -> None:
    big = b"<p>" + b"word " * (1 << 20) + b"</p>"  # 5 MB
    with pytest.raises(UnsupportedDocument, match="larger than 4 MB"):
        check_html("big.html", big, ParseLimits(html_max_mb=4))
    check_html("big.html", big, ParseLimits(html_max_mb=6))
