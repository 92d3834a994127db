from uuid import uuid4

from ingest.chunking import Piece, chunk_id, split
from ingest.loaders import Section, load
from tests.support.documents import MARKDOWN_GUIDE, pdf_bytes


def test_long_text_is_split_within_the_size_limit() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(20))
    chunks = split("doc.txt", [Section(text)], size=400, overlap=50)
    assert len(chunks) > 5
    assert all(len(c.text) <= 400 for c in chunks)
    assert "Paragraph 19" in chunks[-1].text


def test_markdown_splits_on_headings() -> None:
    text = "# One\n\n" + "alpha " * 100 + "\n\n# Two\n\n" + "beta " * 100
    chunks = split("doc.md", [Section(text)], size=300, overlap=0)
    assert any(c.text.startswith("# Two") for c in chunks)


def test_chunks_never_span_sections_and_keep_their_place() -> None:
    sections = [
        Section("alpha " * 30, page=1),
        Section("beta " * 200, page=2, heading="Results"),
    ]
    chunks = split("doc.pdf", sections, size=300, overlap=40)
    assert chunks[0].page == 1 and "beta" not in chunks[0].text
    later = chunks[1:]
    assert len(later) > 2
    assert all(c.page == 2 and c.section == "Results" and "alpha" not in c.text for c in later)


def test_pdf_chunks_cite_the_page_their_text_is_on() -> None:
    pages = [f"Page {n} says: " + f"fact{n} " * 150 for n in range(1, 5)]
    chunks = split("report.pdf", load("report.pdf", pdf_bytes(pages)), size=300, overlap=50)
    assert {c.page for c in chunks} == {1, 2, 3, 4}
    assert all(len(c.text) <= 300 for c in chunks)
    for chunk in chunks:
        assert f"fact{chunk.page}" in chunk.text or f"Page {chunk.page}" in chunk.text
        assert not any(f"fact{n}" in chunk.text for n in range(1, 5) if n != chunk.page)


def test_small_sections_stay_chunks_of_their_own_with_their_heading() -> None:
    chunks = split("guide.md", load("guide.md", MARKDOWN_GUIDE), size=500, overlap=50)
    assert [c.section for c in chunks] == [
        None,
        "Install",
        "Install > Linux",
        "Install > C#",
        "Usage",
    ]
    assert chunks[1] == Piece("# Install\n\nRun the installer.", page=None, section="Install")


def test_an_overlap_as_large_as_the_size_still_splits() -> None:
    chunks = split("doc.txt", [Section("word " * 400)], size=100, overlap=100)
    assert len(chunks) > 10
    assert all(len(c.text) <= 100 for c in chunks)


def test_whitespace_only_sections_give_no_chunks() -> None:
    assert split("doc.txt", [Section("  \n\n  "), Section("x", page=2)], size=50, overlap=0) == [
        Piece("x", page=2, section=None)
    ]


def test_chunk_ids_are_stable_and_content_addressed() -> None:
    doc = uuid4()
    assert chunk_id(doc, 0, "text") == chunk_id(doc, 0, "text")
    assert chunk_id(doc, 0, "text") != chunk_id(doc, 0, "changed")
    assert chunk_id(doc, 0, "text") != chunk_id(doc, 1, "text")
    assert chunk_id(doc, 3, "text").startswith(f"{doc}:3:")
