"""Splitting a passage into the pieces an answer quotes and compression keeps
or drops: the sentences of paragraphs, and whole list items, headings, table
rows and code blocks.

Pieces keep their own text (markup included) so that what is kept is always
a quotation; only the line breaks of hard-wrapped prose become spaces (a line
break inside a paragraph is not a sentence end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_FENCE = re.compile(r"^\s*(```|~~~)")
_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_ONE_LINE = re.compile(r"^\s*(?:#{1,6}\s|\|)")  # headings and table rows
_INDENTED = re.compile(r"^(?: {4}|\t)")
# A sentence ends at . ! or ? (perhaps followed by closing quotes or brackets)
# before whitespace and a capital, digit or opening quote: "e.g. the" and
# "3.5" stay whole.
_SENTENCE_END = re.compile(
    r"""
    (?: (?<=[.!?]) | (?<=[.!?][\"'\u201d\u2019)\]]) | (?<=[.!?][\"'\u201d\u2019)\]]{2}) )
    \s+
    (?=[\"'\u201c\u2018(\[]?[A-Z0-9])
    """,
    re.VERBOSE,
)
_WORDY = re.compile(r"\w")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
# Words that end with a full stop without ending the sentence ("e.g. Python",
# "see Fig. 3"): a split after one of them is undone.
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:e\.g|i\.e|etc|vs|cf|approx|resp|incl|esp|Mr|Mrs|Ms|Dr|Prof|St|No|"
    r"Nos|Fig|Figs|Sec|Ch|Vol|p|pp|al|Inc|Ltd|Co|Jr|Sr|[A-Z])\.$",
)

Kind = Literal["sentence", "item", "heading", "row", "code"]


@dataclass(frozen=True)
class Unit:
    """One piece of a passage: a sentence of a paragraph, or a whole list
    item, heading, table row or code block."""

    text: str
    kind: Kind
    heading: str | None
    """The nearest heading above it inside the passage, without its ``#``."""


def _prose(text: str) -> list[str]:
    pieces: list[str] = []
    for piece in (s.strip() for s in _SENTENCE_END.split(text)):
        if not piece:
            continue
        if pieces and _ABBREVIATION.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {piece}"
        else:
            pieces.append(piece)
    return pieces


def _units(text: str) -> list[tuple[str, bool]]:
    """(text, is_prose) per list item, heading, table row, code block or
    paragraph, in order."""
    units: list[tuple[str, bool]] = []
    prose: list[str] = []  # the lines of the paragraph or list item being read
    code: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if prose:
            # A list item stays whole: it is one point however many sentences.
            is_item = bool(_ITEM.match(prose[0]))
            units.append((" ".join(line.strip() for line in prose), not is_item))
            prose.clear()
        if code:
            units.append(("\n".join(code), False))
            code.clear()

    for line in text.splitlines():
        if fence is not None:
            code.append(line)
            if line.strip().startswith(fence):
                fence = None
                flush()
            continue
        opening = _FENCE.match(line)
        if opening:
            flush()
            fence = opening.group(1)
            code.append(line)
        elif not _WORDY.search(line):
            # Blank lines and rules (---, ***) end a paragraph.
            flush()
        elif _INDENTED.match(line) and not prose and not _ITEM.match(line):
            # Indented code cannot interrupt a paragraph (as in Markdown).
            code.append(line)
        elif _ONE_LINE.match(line):
            flush()
            units.append((line.strip(), False))
        else:
            if code or _ITEM.match(line):
                flush()
            prose.append(line)
    flush()  # also closes a code block the chunk boundary cut off
    return units


def split_sentences(text: str) -> list[str]:
    """The passage's sentences and whole blocks, in order, without blank
    ones or bare markup such as ``---``."""
    pieces: list[str] = []
    for unit, is_prose in _units(text):
        pieces.extend(_prose(unit) if is_prose else [unit])
    return [p for p in pieces if _WORDY.search(p)]


def _kind(unit: str, is_prose: bool) -> Kind:
    if is_prose:
        return "sentence"
    if _FENCE.match(unit) or _INDENTED.match(unit):
        return "code"
    if _HEADING.match(unit):
        return "heading"
    if unit.lstrip().startswith("|"):
        return "row"
    return "item"


def passage_units(text: str) -> list[Unit]:
    """The passage's units in order, each knowing the heading it sits under."""
    found: list[Unit] = []
    heading: str | None = None
    for unit, is_prose in _units(text):
        kind = _kind(unit, is_prose)
        pieces = _prose(unit) if is_prose else [unit]
        for piece in pieces:
            if _WORDY.search(piece):
                found.append(Unit(piece, kind, heading))
        if kind == "heading":
            heading = _HEADING.sub("", unit).strip() or heading
    return found
