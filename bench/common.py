"""What the benchmarks share: the run's context, load generators, and a
tenant with a few indexed documents to chat about."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _stat_cpu_seconds(stat: str) -> float:
    """User + system CPU time in a /proc/<pid>/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(proc: Proc) -> float:
    """User + system CPU time the process has used, from /proc."""
    return _stat_cpu_seconds(Path(f"/proc/{proc.process.pid}/stat").read_text())


def machine_busy_seconds() -> float:
    """CPU-seconds all cores have spent on anything but idling (every
    process: the services, the stores, Kafka, the clients), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# What each process of a run is, by a word of its command line.
_ROLES = (
    "gateway",
    "worker query",
    "worker ingest",
    "stub_llm",
    "blaster",
    "kafka",
    "chroma",
    "postgres",
    "redis",
)


def cpu_by_role() -> dict[str, float]:
    """CPU-seconds used so far by every process on the machine, summed by
    role (``bench`` is this process, ``other`` the rest)."""
    used: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        seconds = _stat_cpu_seconds(stat)
        role = "bench" if int(entry.name) == os.getpid() else "other"
        role = next((r for r in _ROLES if r in command), role)
        used[role] = used.get(role, 0.0) + seconds
    return used


@dataclass
class CpuMeter:
    """Machine CPU and wall time over the spans measured with it, and the
    CPU of each kind of process."""

    busy: float = 0.0
    wall: float = 0.0
    roles: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def span(self) -> Iterator[None]:
        busy, began, roles = machine_busy_seconds(), time.perf_counter(), cpu_by_role()
        try:
            yield
        finally:
            self.busy += machine_busy_seconds() - busy
            self.wall += time.perf_counter() - began
            for role, seconds in cpu_by_role().items():
                self.roles[role] = self.roles.get(role, 0.0) + seconds - roles.get(role, 0.0)

    def summary(self, chats: int) -> dict[str, Any]:
        """CPU-milliseconds per chat (all of the machine, and by process),
        and how many of the machine's cores were busy on average."""
        per_chat = 1000 / chats if chats else 0.0
        by_role = sorted(self.roles.items(), key=lambda kv: -kv[1])
        return {
            "cpu_ms_per_chat": round(self.busy * per_chat, 2),
            "cpu_ms_per_chat_by_process": {r: round(s * per_chat, 1) for r, s in by_role if s > 0},
            "cores_busy": round(self.busy / self.wall, 2) if self.wall else 0.0,
            "cores": os.cpu_count() or 1,
        }
