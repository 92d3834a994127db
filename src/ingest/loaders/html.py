"""HTML: the visible text in reading order, a section per heading (h1-h6),
without page furniture: scripts, styles, navigation, hidden elements, and the
page's own header, footer and sidebars.

Every text node counts, not only those in paragraphs: many pages keep their
text directly in ``<div>``s. Whitespace collapses as a browser would, except in
``<pre>``, and each block element starts a new line.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field

from bs4 import BeautifulSoup
from bs4.dammit import EncodingDetector
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

from ingest.loaders.base import Section
from ingest.loaders.clean import allowed_charset
from ingest.loaders.headings import HeadingPath
from ingest.loaders.text import decode
from shared.errors import UnsupportedDocument

_FURNITURE = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "aside",
    "iframe",
    "svg",
    "canvas",
    "object",
    "embed",
    "button",
    "select",
    "datalist",
)
# A header or footer is the page's (logo, menus, copyright) unless it sits in an
# article or main, where it holds that content's own title or notes.
_PAGE_FRAME = ("header", "footer")
_FRAME_ROLES = ("navigation", "banner", "contentinfo", "search")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = frozenset(
    "address article blockquote body caption dd details dialog div dl dt fieldset figcaption "
    "figure footer form header hr li main ol p section summary table tr ul".split()
)
_CELLS = ("td", "th")


def load(filename: str, data: bytes) -> list[Section]:
    soup = BeautifulSoup(_decode(filename, data), "html.parser")
    _drop_furniture(soup)
    root = soup.find("main") or soup.body or soup
    builder = _SectionBuilder()
    if isinstance(root, Tag):
        _walk(root, builder)
    return builder.finish()


def _decode(filename: str, data: bytes) -> str:
    """UTF-8 unless the page declares its charset (``<meta charset>``, the
    ``http-equiv`` form, or an XML declaration), as pages saved from older
    sites often do (ISO-8859-1, windows-1252); a UTF-8 byte order mark wins
    over any declaration, as in a browser. Only ASCII-compatible charsets
    are accepted (``clean.allowed_charset``). An undeclared non-UTF-8 page
    is refused rather than guessed at."""
    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    if declared is None or data.startswith(codecs.BOM_UTF8):
        return decode(filename, data)
    codec = allowed_charset(declared)
    if codec is None:
        raise UnsupportedDocument(
            f"{filename!r}: charset {declared[:40]!r} is not supported"
            " (use UTF-8 or another ASCII-compatible charset)"
        )
    if codec == "utf-8":
        return decode(filename, data)
    if b"\x00" in data:
        raise UnsupportedDocument(f"{filename!r}: binary content in a text file")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise UnsupportedDocument(
            f"{filename!r}: not {declared} text as declared (byte {exc.start}: {exc.reason})"
        ) from None


def _drop_furniture(soup: BeautifulSoup) -> None:
    doomed = [
        *soup.find_all(_FURNITURE),
        *soup.find_all(None, attrs={"hidden": True}),
        *soup.find_all(None, attrs={"aria-hidden": "true"}),
        *soup.find_all(None, attrs={"role": list(_FRAME_ROLES)}),
        *(
            tag
            for tag in soup.find_all(_PAGE_FRAME)
            if tag.find_parent(("article", "main")) is None
        ),
    ]
    for tag in doomed:
        # A tag inside one already removed is gone with it.
        if isinstance(tag, Tag) and not tag.decomposed:
            tag.decompose()


def _walk(root: Tag, out: _SectionBuilder) -> None:
    # An explicit stack, not recursion: generated pages can nest deeper than Python's limit.
    stack: list[tuple[Tag, Iterator[PageElement]]] = [(root, iter(root.children))]
    while stack:
        parent, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if parent.name in _BLOCKS:
                out.end_line()
        elif isinstance(child, Tag):
            if child.name in _HEADINGS:
                out.heading(int(child.name[1]), child.get_text(" "))
            elif child.name == "pre":
                out.preformatted(child.get_text())
            elif child.name in ("br", "hr"):
                out.end_line()
            else:
                if child.name in _BLOCKS:
                    out.end_line()
                elif child.name in _CELLS and child.find_previous_sibling(_CELLS) is not None:
                    out.text(" | ")
                stack.append((child, iter(child.children)))
        elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
            # PreformattedString covers comments, CDATA, doctypes and processing instructions.
            out.text(str(child))


@dataclass
class _SectionBuilder:
    sections: list[Section] = field(default_factory=list)
    path: HeadingPath = field(default_factory=HeadingPath)
    lines: list[str] = field(default_factory=list)
    line: list[str] = field(default_factory=list)

    def text(self, text: str) -> None:
        self.line.append(text)

    def end_line(self) -> None:
        # Collapsing here, over the whole line, joins inline elements as a browser does.
        text = " ".join("".join(self.line).split())
        if text:
            self.lines.append(text)
        self.line.clear()

    def preformatted(self, text: str) -> None:
        self.end_line()
        body = "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")
        if body.strip():
            self.lines.append(body)

    def heading(self, level: int, title: str) -> None:
        self.close()
        self.path.enter(level, title)
        self.text(title)
        self.end_line()

    def close(self) -> None:
        self.end_line()
        body = "\n".join(self.lines).strip()
        if body:
            self.sections.append(Section(body, heading=self.path.current))
        self.lines.clear()

    def finish(self) -> list[Section]:
        self.close()
        return self.sections
