"""A document's bytes to its chunks of text: what runs in the parsing child
process (``ingest.parser_pool``), so it is a plain function of picklable
arguments."""

from __future__ import annotations

from ingest.chunking import Piece, split
from ingest.loaders import ParseLimits, load


def parse(filename: str, data: bytes, limits: ParseLimits, size: int, overlap: int) -> list[Piece]:
    return split(filename, load(filename, data, limits), size=size, overlap=overlap)
