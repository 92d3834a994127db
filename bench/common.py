"""What the benchmarks share: the run's context, load generators, and a
tenant with a few indexed documents to chat about."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.client import Account, StreamResult, sign_up, upload, wait_indexed
from bench.corpus import TextMaker
from bench.stack import Infra, Proc

CHAT_TOKENS = 50  # the stub LLM's answer length for the chat benchmarks
CHAT_RATE = 200.0  # and its rate, tokens/s per stream: a 0.25 s answer


@dataclass
class Context:
    infra: Infra
    quick: bool
    out_dir: Path

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


async def run_n(
    n: int, concurrency: int, one: Callable[[int], Awaitable[StreamResult]]
) -> list[StreamResult]:
    """``n`` calls of ``one``, at most ``concurrency`` at a time."""
    results: list[StreamResult] = []
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            results.append(await one(i))

    await asyncio.gather(*(lane() for _ in range(min(n, concurrency))))
    return results


async def closed_loop(
    seconds: float, concurrency: int, one: Callable[[int], Awaitable[StreamResult]]
) -> tuple[list[StreamResult], float]:
    """``concurrency`` clients each calling ``one`` back to back; the calls
    started within ``seconds`` (all awaited), and the wall time they took."""
    results: list[StreamResult] = []
    began = time.perf_counter()
    stop = began + seconds
    counter = iter(range(10**9))

    async def lane() -> None:
        for i in counter:
            if time.perf_counter() >= stop:
                return
            results.append(await one(i))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return results, time.perf_counter() - began


@dataclass
class ChatTenant:
    account: Account
    questions: list[str]


async def chat_tenant(gateway: Proc, documents: int = 6) -> ChatTenant:
    """A new tenant with ``documents`` indexed documents, and questions whose
    words are in them (so retrieval finds sources every time)."""
    maker = TextMaker(seed=3)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
        account = await sign_up(http)
        texts = [maker.document(paragraphs=8) for _ in range(documents)]
        ids = [
            await upload(http, account, f"doc-{i}.txt", text.encode())
            for i, text in enumerate(texts)
        ]
        await wait_indexed(http, account, ids, seconds=300)
    questions = [" ".join(maker.question().split()[:6]) for _ in range(200)]
    return ChatTenant(account, questions)


def cpu_seconds(proc: Proc) -> float:
    """User + system CPU time the process has used, from /proc."""
    fields = Path(f"/proc/{proc.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    import os

    return ticks / os.sysconf("SC_CLK_TCK")
