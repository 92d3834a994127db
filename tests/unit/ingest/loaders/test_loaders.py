"""Every loader on real files of its format, and broken ones."""

from __future__ import annotations

import pytest

from ingest.loaders import is_supported, load
from ingest.loaders.clean import clean
from ingest.loaders.headings import MAX_HEADING_CHARS, HeadingPath
from shared.errors import UnsupportedDocument
from shared.formats import SUPPORTED_SUFFIXES, describe_supported
from tests.support.documents import (
    HTML_PAGE,
    MARKDOWN_GUIDE,
    damaged_docx,
    docx_bytes,
    drawing_pdf,
    encrypted_pdf,
    pdf_bytes,
)


def test_utf8_text_with_bom_is_one_section_as_written() -> None:
    [section] = load("notes.txt", "\ufeffTítulo y más\n\n# not a heading in .txt\n".encode())
    assert section.text == "Título y más\n\n# not a heading in .txt\n"  # the BOM is gone
    assert (section.page, section.heading) == (None, None)


def test_markdown_sections_follow_headings_outside_code_and_front_matter() -> None:
    sections = load("guide.md", MARKDOWN_GUIDE)
    assert [s.heading for s in sections] == [
        None,
        "Install",
        "Install > Linux",
        "Install > C#",
        "Usage",
    ]
    assert "title: Install guide" in sections[0].text
    assert sections[0].text.endswith("Read this first.")
    assert sections[1].text == "# Install\n\nRun the installer."
    assert "# not a heading either" in sections[2].text
    assert sections[4].text == "Usage\n=====\n\nStart it with `rag up`."


def test_markdown_rules_and_closing_hashes_are_not_headings() -> None:
    text = "# Title #\n\nA paragraph.\n\n---\n\n- item\n---\n\nEnd.\n"
    sections = load("notes.markdown", text.encode())
    assert [s.heading for s in sections] == ["Title"]
    assert sections[0].text.endswith("End.")


def test_html_keeps_the_text_and_drops_the_furniture() -> None:
    sections = load("handbook.html", HTML_PAGE)
    joined = "\n".join(s.text for s in sections)
    for furniture in (
        "tracking",
        "navigation bar",
        "banner",
        "Breadcrumb",
        "footer",
        "sidebar",
        "color: red",
        "Hidden draft",
        "comment",
    ):
        assert furniture not in joined
    assert [s.heading for s in sections] == [
        "Office handbook",
        "Office handbook > Security",
        "Office handbook > Kitchen",
    ]
    assert sections[0].text == (
        "Office handbook\nWelcome to the office. Read this before your first day."
    )
    assert sections[1].text == (
        "Security\nBadges must be worn at all times.\nLost badges are reported to security at once."
    )
    assert "Day | Duty\nFriday | Clean the machine" in sections[2].text
    assert sections[2].text.endswith("make coffee\n    --strong")


def test_html_in_its_declared_charset_is_read() -> None:
    page = '<html><head><meta charset="iso-8859-1"></head><body><h1>Café</h1><p>Crème brûlée.</p>'
    sections = load("menu.html", page.encode("iso-8859-1"))
    assert [(s.heading, s.text.strip()) for s in sections] == [("Café", "Café\nCrème brûlée.")]


def test_html_without_headings_or_blocks_is_one_section() -> None:
    [section] = load("fragment.htm", b"Just <i>some</i>\n   text, <b>no</b> tags around it.")
    assert (section.text, section.heading) == ("Just some text, no tags around it.", None)


def test_pdf_sections_are_pages_numbered_from_one() -> None:
    pages = ["First page text.", "", "Third page: the answer is here."]
    sections = load("report.pdf", pdf_bytes(pages))
    # The blank page gives no section; the numbering still counts it.
    assert [(s.page, s.text, s.heading) for s in sections] == [
        (1, "First page text.", None),
        (3, "Third page: the answer is here.", None),
    ]


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_a_pdf_encrypted_with_an_empty_password_is_read(algorithm: str) -> None:
    [section] = load("open.pdf", encrypted_pdf(["Readable anyway."], "", algorithm))
    assert (section.page, section.text) == (1, "Readable anyway.")


def test_docx_sections_follow_heading_styles_with_tables_in_place() -> None:
    data = docx_bytes(
        [
            ("title", "Staff policy"),
            ("p", "Applies to everyone."),
            ("h2", "Travel"),
            ("p", "Book trains over flights."),
            ("table", "City|Per diem;Paris|90"),
            ("h2", "Leave"),
            ("p", "Ask two weeks ahead."),
        ]
    )
    sections = load("policy.docx", data)
    assert [s.heading for s in sections] == [
        "Staff policy",
        "Staff policy > Travel",
        "Staff policy > Leave",
    ]
    assert sections[0].text == "Staff policy\nApplies to everyone."
    assert sections[1].text == "Travel\nBook trains over flights.\nCity | Per diem\nParis | 90"
    assert sections[2].text == "Leave\nAsk two weeks ahead."


def test_long_heading_paths_keep_the_innermost_heading() -> None:
    path = HeadingPath()
    path.enter(1, "Part " + "very " * 30 + "long")
    path.enter(2, "Chapter " + "quite " * 20 + "long")
    path.enter(3, "Install")
    assert path.current is not None
    assert len(path.current) <= MAX_HEADING_CHARS
    assert path.current.endswith("> Install")
    path.enter(1, "x" * 500)
    assert path.current is not None and len(path.current) == MAX_HEADING_CHARS


def test_a_pdf_page_that_cannot_be_decoded_is_skipped_and_the_rest_kept() -> None:
    data = pdf_bytes(["Text one.", "Text two."])
    # Break page 1's content stream only; same length, so the offsets still hold.
    data = data.replace(b"/FlateDecode", b"/FlateDecodX", 1)
    assert [(s.page, s.text) for s in load("half.pdf", data)] == [(2, "Text two.")]


def _truncated_pdf() -> bytes:
    data = pdf_bytes(["Some text here.", "And more on page two."])
    return data[: len(data) // 2]


def _unknown_filter_pdf() -> bytes:
    # Same length, so the cross-reference table still points at the right bytes.
    return pdf_bytes(["Text one.", "Text two."]).replace(b"/FlateDecode", b"/FlateDecodX")


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("archive.zip", b"PK\x03\x04", "unsupported file type"),
        ("no-suffix", b"text", "unsupported file type"),
        ("notes.txt", b"\xff\xfe\x00h\x00i", "binary content"),
        ("notes.txt", b"text" * 5000 + b"\x00", "binary content"),
        ("notes.txt", b"caf\xe9", "not UTF-8"),
        ("page.html", b"<p>caf\xe9</p>", "not UTF-8"),
        (
            "page.html",
            b'<meta charset="x-klingon"><p>text</p>',
            "charset 'x-klingon' is not supported",
        ),
        ("page.html", b'<meta charset="ascii"><p>caf\xe9</p>', "not ascii text as declared"),
        ("notes.md", b"  \n\t ", "has no text"),
        ("empty.txt", b"", "has no text"),
        (
            "page.html",
            b"<html><body><script>x()</script><nav>Menu</nav></body></html>",
            "has no text",
        ),
        ("broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4, "PDF is corrupt"),
        ("truncated.pdf", _truncated_pdf(), "PDF is corrupt"),
        ("filter.pdf", _unknown_filter_pdf(), r"PDF is corrupt \(2 of 2 pages could not be read"),
        ("locked.pdf", encrypted_pdf(["Secret."], "hunter2"), "is encrypted with a password"),
        ("locked-aes.pdf", encrypted_pdf(["Secret."], "hunter2", "AES-256"), "is encrypted"),
        ("blank.pdf", pdf_bytes(["", ""]), "PDF has no text"),
        ("scan.pdf", drawing_pdf(2), "PDF has no text"),
        ("broken.docx", b"PK\x03\x04 this is not a zip archive", "not a readable DOCX"),
        ("damaged.docx", damaged_docx(), "not a readable DOCX"),
        ("empty.docx", docx_bytes([]), "has no text"),
    ],
)
def test_unreadable_documents_say_why(filename: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedDocument, match=reason) as raised:
        load(filename, data)
    assert repr(filename) in raised.value.message


def test_damaged_pdfs_never_raise_anything_but_unsupported_document() -> None:
    # Deterministic damage all over a real file: whatever breaks inside the
    # parser must come out as a refusal, not a crash of the worker.
    data = pdf_bytes(["Page one has text. " * 20, "Page two has more. " * 20])
    for seed in range(0, 120):
        damaged = bytearray(data)
        for hit in range(12):
            damaged[(seed * 7919 + hit * 104729) % len(data)] = (seed * 31 + hit) % 256
        try:
            sections = load("damaged.pdf", bytes(damaged))
        except UnsupportedDocument:
            continue
        assert all(s.page in (1, 2) and s.text.strip() for s in sections)


def test_every_suffix_the_gateway_accepts_has_a_loader() -> None:
    assert all(is_supported(f"file{suffix.upper()}") for suffix in SUPPORTED_SUFFIXES)
    assert all(suffix in describe_supported() for suffix in SUPPORTED_SUFFIXES)


def test_supported_suffixes_ignore_case() -> None:
    assert is_supported("README.MD")
    assert is_supported("Report.PDF")
    assert is_supported("page.htm")
    assert is_supported(".md")  # the gateway accepts it: the name ends in .md
    assert not is_supported("archive.zip")
    assert not is_supported("pdf")


def test_clean_removes_what_no_later_step_can_hold() -> None:
    # NUL (PostgreSQL refuses it), a lone surrogate (no UTF-8 for it), other
    # C0/C1 controls and DEL go; tabs and line breaks stay; a form feed (a
    # PDF's page break) and a vertical tab become line breaks.
    raw = "a\x00b\ud83dc\x01d\x7fe\x85f\ufffeg\th\r\ni\x0cj\x0bk"
    assert clean(raw) == "abcdefg\th\r\ni\nj\nk"
    assert clean("Ünïcödé “quotes” 日本語 🙂") == "Ünïcödé “quotes” 日本語 🙂"


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        # UTF-7 turns +AAA- into NUL and +2D0- into a lone surrogate.
        (b'<html><head><meta charset="utf-7"></head><p>a+AAA-b+2D0-</p>', "utf-7"),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=UTF-7"><p>x</p>', "utf-7"),
        (b'<?xml version="1.0" encoding="utf-7"?><html><p>x+AAA-</p></html>', "utf-7"),
        (b'<meta charset="utf-16"><p>a page that says so in ASCII</p>', "utf-16"),
        (b'<meta charset="utf-32le"><p>x</p>', "utf-32le"),
        (b'<meta charset="iso-2022-jp"><p>x</p>', "iso-2022-jp"),
    ],
)
def test_html_declaring_a_charset_that_is_not_ascii_compatible_is_refused(
    data: bytes, charset: str
) -> None:
    with pytest.raises(UnsupportedDocument, match=f"charset '{charset}' is not supported"):
        load("page.html", data)


def test_a_utf8_byte_order_mark_wins_over_the_declared_charset() -> None:
    page = '\ufeff<meta charset="iso-8859-1"><p>Café crème</p>'.encode()
    [section] = load("page.html", page)
    assert section.text == "Café crème"


def test_control_characters_are_removed_from_every_format() -> None:
    latin = b'<meta charset="windows-1252"><h1>T\x01itle</h1><p>Bo\x02dy \x7ftext.</p>'
    assert [(s.heading, s.text) for s in load("page.html", latin)] == [
        ("Title", "Title\nBody text.")
    ]
    [pdf_page] = load("controls.pdf", pdf_bytes(["Fire\x07 drill\x1b at noon."]))
    assert pdf_page.text == "Fire drill at noon."
    [text] = load("notes.md", b"# Bell\x07\n\nRing\x1b it.")
    assert (text.heading, text.text) == ("Bell", "# Bell\n\nRing it.")
