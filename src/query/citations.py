"""Citations in an answer: which sources it cites, and a model's citations
checked as they stream, so ``[7]`` of three sources never reaches a reader."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator

# [1], [2, 3], [2-4], [1; 3]; "[1][3]" is two matches. A bracket glued to a word
# (items[1]) is code or a footnote, not a citation.
_CITATION = re.compile(r"(?<!\w)\[\s*(\d+(?:\s*(?:[-\u2013,;]|and)\s*\d+)*)\s*\]")
_CITED_PART = re.compile(r"(\d+)(?:\s*[-\u2013]\s*(\d+))?")
# What the start of a citation can look like before its "]" has arrived.
_OPEN_CITATION = re.compile(r"\s*\[[\d\s,;\-\u2013and]*$")
_LONGEST_CITATION = 40


def _numbers(inside: str) -> list[int]:
    numbers: list[int] = []
    for part in _CITED_PART.finditer(inside):
        first = int(part.group(1))
        last = int(part.group(2)) if part.group(2) else first
        # A range is bounded by its ends, so "[1-99999999]" costs nothing.
        numbers.extend(range(first, min(last, first + _LONGEST_CITATION) + 1))
    return numbers


def cited_numbers(answer: str, n_sources: int) -> list[int]:
    """The source numbers (1 to ``n_sources``) the answer cites, each once, in
    the order the answer first cites them. Ranges such as [2-4] count every
    number in them; numbers outside the sources are ignored."""
    cited: dict[int, None] = {}
    for match in _CITATION.finditer(answer):
        for n in _numbers(match.group(1)):
            if 1 <= n <= n_sources:
                cited.setdefault(n, None)
    return list(cited)


def _valid(citation: str, inside: str, n_sources: int) -> str:
    """The citation with only the sources that exist ("" if none does)."""
    numbers = _numbers(inside)
    kept = list(dict.fromkeys(n for n in numbers if 1 <= n <= n_sources))
    if len(kept) == len(numbers):
        return citation
    return f"[{', '.join(map(str, kept))}]" if kept else ""


_SPACED_CITATION = re.compile(r"(\s?)(" + _CITATION.pattern + r")(?=(\[)?)")


def without_unknown_citations(text: str, n_sources: int) -> str:
    """``text`` with every citation of a source that does not exist removed
    (with the space before it), and mixed ones cut to the sources that do."""

    def replace(match: re.Match[str]) -> str:
        kept = _valid(match.group(2), match.group(3), n_sources)
        # "and [7][1]" keeps its space, or "[1]" would be glued to "and".
        return match.group(1) + kept if kept or match.group(4) else ""

    return _SPACED_CITATION.sub(replace, text)


async def close_stream(stream: AsyncIterator[str]) -> None:
    """Close ``stream`` now if it can be closed (a generator, a model's
    stream), rather than whenever it is garbage-collected."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def checked_citations(
    pieces: AsyncIterator[str], n_sources: int
) -> AsyncGenerator[str, None]:
    """The pieces, with citations of unknown sources removed. Text that may
    be the start of a citation (with the spaces before it) is held back until
    its "]", or anything that cannot be part of one, arrives; so the stream
    stays word by word."""
    held = ""
    last = ""  # the character sent before: "items[7]" is not a citation
    try:
        async for piece in pieces:
            ready, held = _split_open(held + piece)
            if ready:
                text = without_unknown_citations(last + ready, n_sources)[len(last) :]
                last = ready[-1]
                if text:
                    yield text
    finally:
        await close_stream(pieces)
    if held:
        text = without_unknown_citations(last + held, n_sources)[len(last) :]
        if text:
            yield text


def _split_open(text: str) -> tuple[str, str]:
    """(what can be sent now, the trailing spaces and possible citation start
    to hold)."""
    opening = _OPEN_CITATION.search(text)
    if opening is None:
        stripped = text.rstrip()
        return stripped, text[len(stripped) :]
    if len(text) - opening.start() > _LONGEST_CITATION:
        return text, ""
    return text[: opening.start()], text[opening.start() :]
