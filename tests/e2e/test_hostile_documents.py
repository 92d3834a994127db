"""Hostile files, made here (no committed binaries), uploaded by an ordinary
account: each ends ``indexed`` or ``failed`` with a reason within a bound,
and a plain document uploaded after all of them is indexed within 60 s: no
file stalls the ingest worker or its partition.

Before text was made safe after decoding, the UTF-7 page never left
``processing``: ``+AAA-`` decodes to NUL and ``+2D0-`` to a lone surrogate,
whose errors (not ours) were retried for ever.
"""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.support.api import User, new_user, upload, wait_for_status
from tests.support.documents import docx_bytes, pdf_bytes
from tests.support.processes import Component

DEEP = 200_000


def _docx_with(text: str, replacement: bytes) -> bytes:
    """A DOCX whose body XML has ``text`` replaced by raw ``replacement``."""
    original = docx_bytes([("p", text)])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(text.encode(), replacement)
            dst.writestr(item, data)
    return out.getvalue()


def _docx_bomb(zeros: int) -> bytes:
    """A real DOCX with one more part: ``zeros`` bytes of zeros, deflated
    (300 MB is 0.3 MB on the wire)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx_bytes([("p", "Bomb.")]))) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        with dst.open("word/media/zeros.bin", "w") as part:
            block = bytes(1 << 20)
            for _ in range(zeros >> 20):
                part.write(block)
    return out.getvalue()


def _corpus() -> dict[str, tuple[bytes, str]]:
    """file name: (bytes, expected outcome: ``indexed`` or a reason the failure gives)."""
    polyglot = pdf_bytes(["Polyglot page."]) + docx_bytes([("p", "Polyglot paragraph.")])
    pdf, docx = pdf_bytes(["Some text on a page."]), docx_bytes([("p", "Some text.")])
    return {
        "utf7-meta.html": (
            b'<html><head><meta charset="utf-7"></head><body><p>a+AAA-b +2D0- c</p></body>',
            "charset 'utf-7' is not supported",
        ),
        "utf7-xml.html": (b'<?xml version="1.0" encoding="UTF-7"?><p>x+AAA-</p>', "utf-7"),
        "utf16-equiv.html": (
            b'<meta http-equiv="Content-Type" content="text/html; charset=utf-16"><p>x</p>',
            "charset 'utf-16' is not supported",
        ),
        "bom-mismatch.html": (
            '\ufeff<meta charset="iso-8859-1"><p>Café and crème.</p>'.encode(),
            "indexed",
        ),
        "invalid-utf8.txt": (b"caf\xe9 \xff\xfe\xfd", "not UTF-8"),
        "utf16-bom.txt": ("Text in UTF-16.".encode("utf-16"), "binary content"),
        "utf16-as-utf8.md": ("# UTF-16 with no BOM".encode("utf-16-le"), "binary content"),
        "nul.md": (b"# Title\n\nA\x00B", "binary content"),
        "nul.html": (b"<p>A\x00B</p>", "binary content"),
        "controls.pdf": (pdf_bytes(["Fire\x00 drill\x07 at\x1b noon."]), "indexed"),
        "controls.txt": (b"Bell\x07 escape\x1b delete\x7f vertical\x0btab.", "indexed"),
        "surrogate.docx": (_docx_with("Hello", b"Hel&#xD800;lo"), "not a readable DOCX"),
        "nul-ref.docx": (_docx_with("Hello", b"Hel&#x0;lo"), "not a readable DOCX"),
        "deep.html": (b"<i>" * DEEP + b"Deep text." + b"</i>" * 100, "nests more than 1000"),
        "bomb.docx": (_docx_bomb(300 << 20), "expands to more than 200 MB"),
        "ratio.docx": (_docx_bomb(20 << 20), "compressed more than 100:1"),
        "one-line.txt": (b"word " * 24_000, "indexed"),
        "truncated.pdf": (pdf[: len(pdf) // 2], "the PDF is corrupt"),
        "truncated.docx": (docx[: len(docx) // 2], "not a readable DOCX"),
        "polyglot.pdf": (polyglot, "indexed"),
        "polyglot.docx": (polyglot, "indexed"),
    }


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await new_user(client)


@pytest.mark.timeout(420)
async def test_hostile_files_settle_with_a_reason_and_never_hold_up_the_next_upload(
    client: httpx.AsyncClient, user: User, workers: list[Component]
) -> None:
    corpus = _corpus()
    ids = {name: await upload(client, user, name, data) for name, (data, _) in corpus.items()}
    ordinary = await upload(client, user, "after.md", b"# After\n\nThe plain upload after.\n")
    started = time.monotonic()
    assert (await wait_for_status(client, user, ordinary, 60))["status"] == "indexed"
    print(f"\nordinary document indexed {time.monotonic() - started:.1f} s after the hostile ones")

    settled = await asyncio.gather(*(wait_for_status(client, user, i, 120) for i in ids.values()))
    outcomes = dict(zip(ids, settled, strict=True))
    for name, doc in outcomes.items():
        took = datetime.fromisoformat(doc["updated_at"]) - datetime.fromisoformat(doc["created_at"])
        print(f"{name}: {doc['status']} in {took.total_seconds():.2f} s ({doc['error']})")
    for name, (_, expected) in corpus.items():
        doc = outcomes[name]
        if expected == "indexed":
            assert (doc["status"], doc["error"]) == ("indexed", None), name
            assert doc["chunks"] > 0, name
        else:
            assert doc["status"] == "failed", (name, doc)
            assert expected in doc["error"], (name, doc["error"])
    # Parsing ran in a child process: the worker itself never held a bomb.
    ingest = workers[0]
    peak = _peak_rss_mb(ingest.process.pid)
    print(f"ingest worker peak RSS after the hostile corpus: {peak} MB")
    assert ingest.process.poll() is None, "the ingest worker died"


def _peak_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kb // 1024
