"""Plain text: one section, decoded as UTF-8."""

from __future__ import annotations

from ingest.loaders.base import Section
from shared.errors import UnsupportedDocument


def decode(filename: str, data: bytes) -> str:
    # The whole file, not a prefix: a NUL anywhere would also be refused later
    # by PostgreSQL, which cannot store it in text.
    if b"\x00" in data:
        raise UnsupportedDocument(f"{filename!r}: binary content in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedDocument(
            f"{filename!r}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


def load(filename: str, data: bytes) -> list[Section]:
    return [Section(decode(filename, data))]
