"""Markdown: a section per heading (ATX ``# Title`` and setext ``Title`` over
``=====``), never inside code fences or YAML front matter, where ``#`` starts a
comment, not a heading. Each section's text starts with its heading line."""

from __future__ import annotations

import re

from ingest.loaders.base import Section
from ingest.loaders.headings import HeadingPath
from ingest.loaders.text import decode

# A closing run of #s only counts after a space, so "# C#" is about C#.
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Lines a setext underline cannot turn into a heading (lists, quotes, tables, code).
_NOT_A_TITLE = re.compile(r"^(?: {4}|\t| {0,3}(?:[-*+>|]|\d+[.)])(?:\s|$))")
_FRONT_MATTER_END = ("---", "...")


def load(filename: str, data: bytes) -> list[Section]:
    return split_markdown(decode(filename, data))


def split_markdown(text: str) -> list[Section]:
    sections: list[Section] = []
    path = HeadingPath()
    lines: list[str] = []

    def close(keep: int = 0) -> None:
        # ``keep`` trailing lines open the next section (a setext title).
        done, carried = lines[: len(lines) - keep], lines[len(lines) - keep :]
        body = "\n".join(done).strip()
        if body:
            sections.append(Section(body, heading=path.current))
        lines[:] = carried

    source = text.splitlines()
    start = _front_matter_end(source)
    lines.extend(source[:start])
    fence = ""
    for line in source[start:]:
        if fence:
            if line.lstrip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
        elif opening := _FENCE.match(line):
            fence = opening.group(1)
        elif heading := _ATX.match(line):
            close()
            path.enter(len(heading.group(1)), heading.group(2))
        elif (underline := _SETEXT.match(line)) and _is_title(lines):
            close(keep=1)
            path.enter(1 if underline.group(1)[0] == "=" else 2, lines[0])
        lines.append(line)
    close()
    return sections


def _is_title(lines: list[str]) -> bool:
    """Whether the last line is a one-line paragraph a setext underline can make a heading.

    Multi-line setext titles are legal but rare; refusing them keeps a ``---``
    rule under a paragraph from turning that whole paragraph into a heading.
    """
    if not lines or not lines[-1].strip():
        return False
    last = lines[-1]
    if _NOT_A_TITLE.match(last) or _ATX.match(last) or _FENCE.match(last) or _SETEXT.match(last):
        return False
    return len(lines) == 1 or not lines[-2].strip()


def _front_matter_end(lines: list[str]) -> int:
    """How many leading lines are YAML front matter (0 if there is none)."""
    if not lines or lines[0].rstrip() != "---":
        return 0
    for index, line in enumerate(lines[1:], 2):
        if line.rstrip() in _FRONT_MATTER_END:
            return index
    return 0
