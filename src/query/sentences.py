"""Splitting a passage into the pieces compression keeps or drops: the
sentences of paragraphs, and whole list items, headings, table rows and code
blocks.

Pieces keep their own text (markup included) so that what compression keeps
is always a quotation; only the line breaks of hard-wrapped prose become
spaces.
"""

from __future__ import annotations

import re

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


def _prose(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


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
