"""Parsing in a child process with a memory and a wall-clock limit, so a
hostile file costs one child, never the worker.

Parsers (pypdf, python-docx, lxml, BeautifulSoup) are large and read what the
file says; a file can make them allocate gigabytes or loop for minutes. In
the worker's own process that is an OOM kill (the message redelivered, and
again) or a partition stopped. Here the child runs under ``RLIMIT_AS``, so an
allocation past the limit is a ``MemoryError`` in the child, and a parse past
the wall clock has its child killed; either way the document fails with a
reason and the next one gets a fresh child.

Children are reused (a pool of one per worker process, started from a fork
server that has imported the parsers), so an ordinary document pays a round
trip to a warm process, not a Python start-up.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog

from shared.errors import DeadlineExceeded, UnsupportedDocument

log = structlog.get_logger(__name__)

T = TypeVar("T")
_PRELOAD = ["ingest.loaders", "ingest.chunking"]


def _limit_memory(max_bytes: int) -> None:
    # Address space, not resident size: the only limit the kernel enforces
    # per process without cgroups, and what makes an allocation fail cleanly.
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class ParserPool:
    """Runs a function in a limited child process; ``run`` raises
    ``UnsupportedDocument`` (out of memory, crashed) or ``DeadlineExceeded``
    (too slow) for what the file did to the child, and whatever the function
    raised otherwise."""

    def __init__(self, max_memory_mb: int, max_seconds: float) -> None:
        self.max_memory_mb = max_memory_mb
        self.max_seconds = max_seconds
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()  # one parse at a time per worker process

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._context,
                initializer=_limit_memory,
                initargs=(self.max_memory_mb * 1024 * 1024,),
            )
        return self._executor

    async def run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the child; ``what`` names the file in reasons."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool(), fn, *args)
            try:
                return await asyncio.wait_for(future, self.max_seconds)
            except TimeoutError:
                self._kill("timeout")
                raise DeadlineExceeded(
                    f"{what}: parsing took longer than {self.max_seconds:g} s"
                ) from None
            except MemoryError:
                self._kill("memory")
                raise UnsupportedDocument(
                    f"{what}: parsing needs more than {self.max_memory_mb} MB of memory"
                ) from None
            except BrokenProcessPool:
                self._kill("crashed")
                raise UnsupportedDocument(f"{what}: the parser crashed on this file") from None

    def _kill(self, why: str) -> None:
        """End the child (a runaway parse would run on) and start afresh
        next time."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        log.warning("Parser child replaced", reason=why)
        for process in list(getattr(executor, "_processes", {}).values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
