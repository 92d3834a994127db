"""Quoted document text as a reader sees it: Markdown markup removed, the
words, numbers, identifiers and option names left exactly as written.

Answers are shown as plain text by the CLI and the web page alike, so markup
kept in a quote would be noise in both (``**30 calendar days**``)."""

from __future__ import annotations

import re

_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
# Emphasis needs a closing mark and text that starts and ends with a
# non-space: "*args" and "2 * 3" are left alone.
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?![\w*])")
_LINE_START = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+\u2022]\s+|\d+[.)]\s+)")
# What a sentence split leaves of an emphasis that spanned two sentences.
_STRAY_EDGE = re.compile(r"^[*_]+(?=\w)|(?<=[\w.!?)])[*_]+$")


def _outside_code(text: str) -> str:
    text = _IMAGE_OR_LINK.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    return _EMPHASIS.sub(r"\2", text)


def plain(text: str) -> str:
    """``text`` without Markdown markup, on one line."""
    if text.lstrip().startswith(("```", "~~~")):
        body = [
            line for line in text.splitlines()[1:] if not line.strip().startswith(("```", "~~~"))
        ]
        return " ".join(" ".join(body).split())
    text = _LINE_START.sub("", text)
    if text.lstrip().startswith("|"):
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        text = " | ".join(c for c in cells if c)
    pieces: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        pieces.append(_outside_code(text[last : span.start()]))
        pieces.append(span.group(2).strip())  # code: verbatim, e.g. **kwargs
        last = span.end()
    pieces.append(_outside_code(text[last:]))
    flat = " ".join("".join(pieces).split())
    return _STRAY_EDGE.sub("", flat)
