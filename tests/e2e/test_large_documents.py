"""Large documents index whole, within the ingest worker's memory limit: a
2,000-page PDF and a 50 MB text file, through the gateway, a real worker,
Kafka, Chroma and PostgreSQL.

The worker embeds with the `hashing` model: what is under test is the
pipeline's memory and batching, not the model's speed (50 MB is about
80,000 chunks). The limit is the one deploy/k8s gives the worker.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fpdf import FPDF

from ingest.chunking import split
from ingest.loaders import load
from shared.config import Settings
from tests.support.api import User, new_user, wait_for_status
from tests.support.kafka import lexical_chunk_count
from tests.support.processes import Component, start_gateway, start_worker
from tests.support.stores import vectors_per_document

MANIFEST = Path(__file__).parents[2] / "deploy" / "k8s" / "ingest-worker.yaml"
_WORDS = (
    "retention schedule policy badge visitor escort archive ledger invoice audit quarterly"
    " contractor laptop encryption backup restore incident report approval budget"
).split()


def memory_limit_bytes() -> int:
    """The ingest worker's memory limit in the Kubernetes manifest."""
    limits = MANIFEST.read_text().split("limits:", 1)[1]
    match = re.search(r"memory:\s*(\d+)(Mi|Gi)", limits)
    assert match, "no memory limit in the ingest worker's manifest"
    return int(match.group(1)) * {"Mi": 2**20, "Gi": 2**30}[match.group(2)]


def _line(rnd: random.Random, words: int) -> str:
    return " ".join(f"{rnd.choice(_WORDS)}{rnd.randrange(5000)}" for _ in range(words))


def text_file(megabytes: int) -> bytes:
    rnd = random.Random(megabytes)
    paragraphs, size = [], 0
    while size < megabytes * 1_000_000:
        paragraph = _line(rnd, 120) + "\n\n"
        paragraphs.append(paragraph)
        size += len(paragraph)
    return "".join(paragraphs).encode()


def pdf_file(pages: int) -> bytes:
    rnd = random.Random(pages)
    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for _ in range(pages):
        pdf.add_page()
        for line in range(30):  # about 2,500 characters a page
            pdf.text(15, 15 + line * 8, _line(rnd, 9))
    return bytes(pdf.output())


@dataclass
class PeakMemory:
    """The peak resident memory of a process, sampled every 100 ms."""

    pid: int
    peak: int = 0
    _stop: bool = False

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop:
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            rss = re.search(r"VmRSS:\s*(\d+) kB", status)
            if rss:
                self.peak = max(self.peak, int(rss.group(1)) * 1024)
            time.sleep(0.1)

    def stop(self) -> int:
        self._stop = True
        self._thread.join()
        return self.peak


@dataclass
class LargeStack:
    gateway: Component
    worker: Component
    env: dict[str, str]


@pytest.fixture(scope="module")
def large_stack(app_env: dict[str, str], log_dir: Path) -> Iterator[LargeStack]:
    env = {
        **app_env,
        "KAFKA_TOPIC_PREFIX": f"large-{uuid.uuid4().hex[:8]}",
        "EMBEDDING_PROVIDER": "hashing",
        "MAX_UPLOAD_MB": "60",
    }
    worker = start_worker("ingest", env, log_dir, name="ingest-large")
    gateway = start_gateway("gateway-large", env, log_dir)
    yield LargeStack(gateway, worker, env)
    gateway.stop()
    worker.stop()


@pytest.fixture
async def http(large_stack: LargeStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=large_stack.gateway.base_url or "", timeout=120) as c:
        yield c


async def _index(
    http: httpx.AsyncClient, stack: LargeStack, user: User, name: str, data: bytes, mime: str
) -> tuple[str, dict[str, object], int, float]:
    """Upload and wait: (id, final document, the worker's peak RSS, seconds)."""
    watch = PeakMemory(stack.worker.process.pid)
    began = time.monotonic()
    response = await http.post(
        "/api/documents", headers=user.headers, files={"file": (name, data, mime)}
    )
    assert response.status_code == 202, response.text
    doc_id = response.json()["id"]
    doc = await wait_for_status(http, user, doc_id, timeout=900)
    return doc_id, doc, watch.stop(), time.monotonic() - began


def _expected_chunks(name: str, data: bytes) -> int:
    defaults = Settings.model_fields
    size, overlap = defaults["chunk_size"].default, defaults["chunk_overlap"].default
    return len(split(name, load(name, data), size=size, overlap=overlap))


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("name", "mime", "make"),
    [
        ("manual-2000-pages.pdf", "application/pdf", lambda: pdf_file(2000)),
        ("export-50mb.txt", "text/plain", lambda: text_file(50)),
    ],
)
async def test_a_large_document_indexes_whole_within_the_memory_limit(
    http: httpx.AsyncClient,
    large_stack: LargeStack,
    name: str,
    mime: str,
    make: Callable[[], bytes],
) -> None:
    data = await asyncio.to_thread(make)
    expected = await asyncio.to_thread(_expected_chunks, name, data)
    user = await new_user(http)

    doc_id, doc, peak, seconds = await _index(http, large_stack, user, name, data, mime)

    vectors = await vectors_per_document(large_stack.env["CHROMA_URL"], [doc_id])
    lexical = await lexical_chunk_count(large_stack.env["DATABASE_URL"], doc_id)
    limit = memory_limit_bytes()
    print(
        f"{name}: {len(data) / 1e6:.1f} MB, {expected} chunks indexed in {seconds:.0f} s;"
        f" worker peak RSS {peak / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB limit"
    )
    assert (doc["status"], doc["error"]) == ("indexed", None)
    assert doc["chunks"] == expected == vectors[doc_id] == lexical
    assert 0 < peak < limit
