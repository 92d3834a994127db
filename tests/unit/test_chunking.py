from uuid import uuid4

from ingest.chunking import chunk_id, split


def test_long_text_is_split_within_the_size_limit() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(20))
    chunks = split("doc.txt", text, size=400, overlap=50)
    assert len(chunks) > 5
    assert all(len(c) <= 400 for c in chunks)
    assert "Paragraph 19" in chunks[-1]


def test_markdown_splits_on_headings() -> None:
    text = "# One\n\n" + "alpha " * 100 + "\n\n# Two\n\n" + "beta " * 100
    chunks = split("doc.md", text, size=300, overlap=0)
    assert any(c.startswith("# Two") for c in chunks)


def test_chunk_ids_are_stable_and_content_addressed() -> None:
    doc = uuid4()
    assert chunk_id(doc, 0, "text") == chunk_id(doc, 0, "text")
    assert chunk_id(doc, 0, "text") != chunk_id(doc, 0, "changed")
    assert chunk_id(doc, 0, "text") != chunk_id(doc, 1, "text")
    assert chunk_id(doc, 3, "text").startswith(f"{doc}:3:")
