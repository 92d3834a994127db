"""Real documents of every supported format, built in code for the tests."""

from __future__ import annotations

import io
import zipfile

import docx
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter


def pdf_bytes(pages: list[str]) -> bytes:
    """A PDF with one page per string, each with extractable text ("" for a blank page).

    The text is set in a core PDF font, so it must be Latin-1.
    """
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def drawing_pdf(pages: int) -> bytes:
    """Pages with shapes but no text at all, as a scanned document looks to a parser."""
    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.rect(20, 20, 100, 60, style="F")
        pdf.line(20, 100, 180, 260)
    return bytes(pdf.output())


def encrypted_pdf(pages: list[str], password: str, algorithm: str = "RC4-128") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages))))
    writer.encrypt(user_password=password, owner_password="owner-" + password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(blocks: list[tuple[str, str]]) -> bytes:
    """``(kind, text)`` blocks: kind is ``title``, ``h1``..``h3``, ``p``, or ``table``
    (rows split by ``;``, cells by ``|``)."""
    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        elif kind == "table":
            rows = [row.split("|") for row in text.split(";")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for row, values in zip(table.rows, rows, strict=True):
                for cell, value in zip(row.cells, values, strict=True):
                    cell.text = value
        else:
            document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def damaged_docx() -> bytes:
    """A valid ZIP archive whose main document XML is cut in half."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes([("h1", "Title"), ("p", "Body text.")])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "word/document.xml":
                content = content[: len(content) // 2]
            target.writestr(item, content)
    return out.getvalue()


MARKDOWN_GUIDE = b"""---
title: Install guide
# a YAML comment, not a heading
---

Read this first.

# Install

Run the installer.

## Linux

Use the package for your distribution.

```bash
# not a heading either
sudo apt install ragstream
```

## C#

Use the NuGet package.

Usage
=====

Start it with `rag up`.
"""

HTML_PAGE = b"""<!doctype html>
<html><head><title>Handbook</title><style>body { color: red }</style>
<script>var tracking = "do not index me";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About the navigation bar</a></nav>
<header>Site header banner</header>
<div role="navigation">Breadcrumb trail</div>
<main>
<article>
<header><h1>Office handbook</h1></header>
<p>Welcome to the office. Read this before your first day.</p>
<h2>Security</h2>
<div>Badges must be worn at all times.</div>
<ul><li>Lost badges are reported to <b>security</b> at once.</li></ul>
<div hidden>Hidden draft paragraph</div>
<!-- an HTML comment -->
<h2>Kitchen</h2>
<p>The coffee machine is cleaned on Fridays.</p>
<table><tr><th>Day</th><th>Duty</th></tr><tr><td>Friday</td><td>Clean the machine</td></tr></table>
<pre>make coffee
    --strong</pre>
</article>
</main>
<aside>Related links sidebar</aside>
<footer>Copyright footer text</footer>
</body></html>
"""
