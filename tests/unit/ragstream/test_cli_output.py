"""What the ``rag`` command prints for people and for machines: log lines
are JSON unless a person watches (a terminal) and LOG_FORMAT allows it;
on a terminal, libraries' routine lines go to LOG_DIR only; a bad setting
is one line naming it, for every command; usage errors are one line too.

Each case runs a real process, its stdout a pipe or a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

RAG = str(Path(sys.executable).parent / "rag")

PROBE = """
import logging, structlog
from shared.config import Settings
from shared.runtime.logging import configure_logging
configure_logging(Settings(), "probe")
structlog.get_logger("gateway.probe").info("ours", n=1)
logging.getLogger("aiokafka.consumer.group_coordinator").warning("rebalancing")
logging.getLogger("aiokafka.consumer.group_coordinator").error("Group Coordinator failed")
logging.getLogger("alembic.runtime.migration").info("Running upgrade 1 -> 2")
logging.getLogger("chromadb.api").error("chroma broke")
"""
LINES = (
    "ours",
    "rebalancing",
    "Group Coordinator failed",
    "Running upgrade 1 -> 2",
    "chroma broke",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOG_")}
    return {**env, **extra}


def _probe(terminal: bool, **extra: str) -> str:
    """What the probe wrote to its stdout, a pseudo-terminal or a pipe."""
    command = [sys.executable, "-c", PROBE]
    if not terminal:
        done = subprocess.run(
            command, env=_env(**extra), capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(command, env=_env(**extra), stdout=follower)
        os.close(follower)
        chunks = []
        while chunk := _read(leader):
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end closed
        return b""


def _json_events(text: str) -> list[str]:
    return [json.loads(line)["event"] for line in text.splitlines() if line.strip()]


def test_a_pipe_gets_json_lines_with_every_library_line() -> None:
    assert _json_events(_probe(terminal=False)) == list(LINES)


def test_a_terminal_gets_coloured_lines_without_library_chatter(tmp_path: Path) -> None:
    shown = _probe(terminal=True, LOG_DIR=str(tmp_path))
    assert not shown.lstrip().startswith("{")
    assert "\x1b[" in shown  # coloured
    assert "ours" in shown and "chroma broke" in shown  # ours, and a library's error
    assert "rebalancing" not in shown and "Running upgrade" not in shown
    assert "Group Coordinator" not in shown  # aiokafka's start-up "errors" too
    # The file keeps everything, as JSON.
    assert _json_events((tmp_path / "probe.log").read_text()) == list(LINES)


def test_log_format_overrides_the_terminal_check(tmp_path: Path) -> None:
    assert _json_events(_probe(terminal=True, LOG_FORMAT="json")) == list(LINES)
    forced = _probe(terminal=False, LOG_FORMAT="console", LOG_DIR=str(tmp_path))
    assert "ours" in forced and "rebalancing" not in forced
    assert not forced.lstrip().startswith("{")


def _rag(*args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAG, *args],
        env=_env(**extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--data-dir", "/nonexistent/never-created"],
        ["services", "--data-dir", "/nonexistent/never-created"],
        ["gateway"],
        ["worker", "ingest"],
        ["worker", "sync"],
        ["migrate"],
        ["dlq", "list"],
        ["reconcile"],
        ["user", "create", "--username", "someone", "--tenant", "t", "--password-stdin"],
    ],
)
def test_a_bad_setting_is_one_line_naming_it(args: list[str]) -> None:
    done = _rag(*args, stdin="a-long-password\n", RETRIEVAL_TOP_K="abc-not-a-number")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "rag: invalid setting RETRIEVAL_TOP_K: "
        "Input should be a valid integer, unable to parse string as an integer"
    )
    assert not Path("/nonexistent/never-created").exists()


def test_a_bad_choice_names_the_setting_without_echoing_values() -> None:
    done = _rag("migrate", LOG_FORMAT="yaml", RETRIEVAL_TOP_K="0")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "rag: invalid setting RETRIEVAL_TOP_K: Input should be greater than or equal to 1"
        " (and 1 more)"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["up", "--port", "abc"], "rag up: Invalid value for '--port'"),
        (["worker", "indexer"], "rag worker: Invalid value for 'kind'"),
        (["chat"], "rag chat: Missing argument '[ID] QUESTION'."),
        (["nonsense"], "rag: No such command 'nonsense'."),
        (["docs", "list", "--bogus"], "rag docs list: unrecognized arguments: --bogus"),
        (["reindex"], "rag: pass either --tenant NAME or --all"),
        (["reindex", "--tenant", "acme", "--all"], "rag: pass either --tenant NAME or --all"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], line: str) -> None:
    done = _rag(*args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(line), done.stderr


def test_every_command_has_help() -> None:
    done = _rag("--help")
    assert done.returncode == 0
    for command in ("up", "login", "logout", "ingest", "chat", "docs", "reindex", "dlq", "user"):
        assert f" {command} " in done.stdout, command


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile"],
        ["reindex", "--all"],
        ["migrate"],
        ["user", "create", "--username", "someone", "--tenant", "t", "--password-stdin"],
    ],
)
def test_a_database_not_there_is_one_line(args: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    done = _rag(
        *args, stdin="a-long-password\n", DATABASE_URL=f"postgresql://u:p@127.0.0.1:{port}/x"
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"rag: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"
        " (is DATABASE_URL right? a local stack's settings are read from .rag/ if unset)"
    )
