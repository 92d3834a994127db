import pytest

from ingest.parsing import is_supported, parse
from shared.errors import UnsupportedDocument


def test_utf8_text_with_bom_is_decoded() -> None:
    assert parse("notes.md", "\ufeff# Título\n".encode()) == "# Título\n"


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("report.pdf", b"%PDF-1.7", "unsupported file type"),
        ("notes.txt", b"\xff\xfe\x00h\x00i", "binary content"),
        ("notes.txt", b"caf\xe9", "not UTF-8"),
        ("notes.txt", b"  \n\t ", "no text"),
    ],
)
def test_unparseable_documents_say_why(filename: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedDocument, match=reason):
        parse(filename, data)


def test_supported_suffixes_ignore_case() -> None:
    assert is_supported("README.MD")
    assert not is_supported("archive.zip")
