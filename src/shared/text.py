"""Words: the one tokeniser the extractive answerer and the offline tools
share, and a chunk's text in its context."""

from __future__ import annotations

import re
from pathlib import PurePath

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    """a an and are as at be but by can do does for from has have how i in is it its of on or
    our that the their there these this to was we were what when where which who why will
    with you your""".split()
)


def terms(text: str) -> list[str]:
    """Lower-cased content words, in order."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def in_context(filename: str, section: str | None, text: str) -> str:
    """A chunk as it is embedded, indexed and reranked: under the document's
    name and the heading path it sits under. A passage often never names what
    it is about ("Set it to true to sort the output"); its headings do. The
    text shown and cited stays the document's own."""
    title = " ".join(PurePath(filename).stem.replace("_", " ").replace("-", " ").split())
    where = f"{title} > {section}" if section else title
    return f"{where}\n\n{text}" if where else text
