"""The parsing child process: a runaway parse, an allocation past the limit
or a crash costs the child, never the caller, and the next parse works."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ingest.loaders import ParseLimits
from ingest.parse import parse
from ingest.parser_pool import ParserPool
from shared.errors import DeadlineExceeded, UnsupportedDocument


def _sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def _allocate(mb: int) -> int:
    return len(bytearray(mb * 1024 * 1024))


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _pid() -> int:
    return os.getpid()


@pytest.fixture
def pool() -> ParserPool:
    return ParserPool(max_memory_mb=512, max_seconds=2)


async def test_a_document_is_parsed_in_a_child(pool: ParserPool) -> None:
    pieces = await pool.run(
        "'a.md'", parse, "a.md", b"# Title\n\nSome text.", ParseLimits(), 800, 100
    )
    assert [(p.text, p.section) for p in pieces] == [("# Title\n\nSome text.", "Title")]
    assert await pool.run("x", _pid) != os.getpid()
    pool.close()


async def test_a_parse_past_the_wall_clock_is_killed(pool: ParserPool) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="parsing took longer than 2 s"):
        await pool.run("'slow.pdf'", _sleep, 30)
    assert time.monotonic() - started < 5
    assert await pool.run("x", _sleep, 0) == "woke"  # a fresh child
    pool.close()


async def test_an_allocation_past_the_limit_fails_in_the_child(pool: ParserPool) -> None:
    with pytest.raises(UnsupportedDocument, match="needs more than 512 MB"):
        await pool.run("'bomb.docx'", _allocate, 2048)
    assert await pool.run("x", _allocate, 16) == 16 * 1024 * 1024
    pool.close()


async def test_a_crashed_child_is_replaced(pool: ParserPool) -> None:
    with pytest.raises(UnsupportedDocument, match="the parser crashed"):
        await pool.run("'evil.pdf'", _crash)
    assert await pool.run("x", _sleep, 0) == "woke"
    pool.close()


async def test_errors_of_the_file_come_back_as_they_were(pool: ParserPool) -> None:
    with pytest.raises(UnsupportedDocument, match="unsupported file type"):
        await pool.run("'a.exe'", parse, "a.exe", b"MZ", ParseLimits(), 800, 100)
    pool.close()
