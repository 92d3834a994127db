"""How the operator commands find a local stack (``ragstream.stack_env``) and
say which server does not answer (``ragstream.dependencies``): the recorded
file, the environment winning variable by variable, the hints, and
addresses and reasons that never carry a password."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ragstream.dependencies import CHROMA, KAFKA, POSTGRES, REDIS, address, reason, scrubbed
from ragstream.errors import CliError
from ragstream.stack_env import Sources, read, record, use
from shared.config import Settings
from tests.support.terminal import run_on_terminal

RAG = [sys.executable, "-m", "ragstream"]
SERVICES = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "DATABASE_URL": "postgresql://rag:p%40ss w'rd@127.0.0.1:15432/rag",
    "REDIS_URL": "redis://127.0.0.1:16379/0",
    "CHROMA_URL": "http://127.0.0.1:18001",
    "BLOB_DIR": "/data/my blobs",
    "SECRET_KEY": "x" * 64,
    "OPENAI_API_KEY": "sk-not-ours-to-copy",
    "HOME": "/root",
}


def test_the_record_is_private_and_holds_what_reaching_the_stack_takes(tmp_path: Path) -> None:
    path = record(tmp_path, SERVICES, command="up", gateway_url="http://127.0.0.1:8000")
    assert path == tmp_path / "stack.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("# Written by `rag up`")
    assert read(tmp_path) == {
        **{k: v for k, v in SERVICES.items() if k.endswith(("_URL", "_SERVERS", "BLOB_DIR"))},
        "KAFKA_TOPIC_PREFIX": "rag",
        "RAG_URL": "http://127.0.0.1:8000",
    }
    # Shell syntax: a shell reads the same values.
    shell = subprocess.run(
        ["sh", "-c", f'. "{path}"; printf %s "$DATABASE_URL|$BLOB_DIR"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == f"{SERVICES['DATABASE_URL']}|{SERVICES['BLOB_DIR']}"
    path.chmod(0o644)  # rewritten: private again
    record(tmp_path, {**SERVICES, "KAFKA_TOPIC_PREFIX": "mine"}, command="services")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read(tmp_path)["KAFKA_TOPIC_PREFIX"] == "mine"  # type: ignore[index]


def test_no_record_and_a_damaged_one(tmp_path: Path) -> None:
    assert read(tmp_path) is None
    (tmp_path / "stack.env").write_text("# fine\nDATABASE_URL=postgresql://x\nnot a setting\n")
    with pytest.raises(CliError, match=r"stack.env, line 3: not NAME=value"):
        read(tmp_path)


def test_the_environment_wins_variable_by_variable(tmp_path: Path) -> None:
    record(tmp_path, SERVICES, command="up")
    environ = {"DATABASE_URL": "postgresql://ops@db/rag", "CHROMA_URL": ""}
    sources = use(tmp_path, environ)
    assert environ["DATABASE_URL"] == "postgresql://ops@db/rag"
    assert environ["CHROMA_URL"] == ""  # set, even empty: the environment's
    assert environ["REDIS_URL"] == SERVICES["REDIS_URL"]
    assert sources.used == {
        "KAFKA_BOOTSTRAP_SERVERS",
        "REDIS_URL",
        "BLOB_DIR",
        "KAFKA_TOPIC_PREFIX",
    }
    assert sources.origin("REDIS_URL", environ) == "file"
    assert sources.origin("DATABASE_URL", environ) == "environment"
    assert sources.origin("LOG_LEVEL", environ) == "default"


def test_each_origin_has_its_hint(tmp_path: Path) -> None:
    here = Sources(Path(".rag"), {"REDIS_URL": "redis://x"}, frozenset({"REDIS_URL"}))
    assert here.hint("REDIS_URL") == (
        "read from .rag/stack.env: is the `rag up` that wrote it running? else set REDIS_URL"
    )
    assert here.hint("CHROMA_URL") == (
        "CHROMA_URL is unset, and .rag/stack.env does not say it: set CHROMA_URL"
    )
    nothing = Sources(Path(".rag"), None)
    assert nothing.hint("DATABASE_URL") == (
        "DATABASE_URL is unset and .rag/ has no local stack's settings: start `rag up`,"
        " pass --data-dir, or set DATABASE_URL"
    )
    os.environ["RAG_TEST_HINT"] = "1"
    try:
        assert nothing.hint("RAG_TEST_HINT") == (
            "is RAG_TEST_HINT right? a local stack's settings are read from .rag/ if unset"
        )
    finally:
        del os.environ["RAG_TEST_HINT"]


@pytest.mark.parametrize(
    ("dependency", "location", "shown"),
    [
        (POSTGRES, "postgresql://rag:secret@db.internal/rag", "db.internal:5432"),
        (POSTGRES, "postgresql+asyncpg://rag:secret@[::1]:6543/rag", "[::1]:6543"),
        (REDIS, "rediss://:secret@cache:6380/0", "cache:6380"),
        (REDIS, "redis://cache", "cache:6379"),
        (CHROMA, "https://chroma.example", "chroma.example:443"),
        (KAFKA, "k1:9092, k2:9092", "k1:9092,k2:9092"),
    ],
)
def test_an_address_is_host_and_port_only(dependency: object, location: str, shown: str) -> None:
    assert address(dependency, location) == shown  # type: ignore[arg-type]


def test_a_password_never_reaches_the_reason() -> None:
    settings = Settings(
        database_url="postgresql://rag:rag@127.0.0.1/rag",
        redis_url="redis://:s3cret%21@127.0.0.1/0",
    )
    text = 'password authentication failed for user "rag" on storage; tried s3cret! and rag'
    assert scrubbed(text, settings) == (
        'password authentication failed for user "***" on storage; tried *** and ***'
    )


def test_reasons_in_a_few_words() -> None:
    wrapped = RuntimeError("Error 111 connecting to 127.0.0.1:1.")
    wrapped.__cause__ = ConnectionRefusedError(111, "Connect call failed")
    assert reason(wrapped) == "connection refused"
    assert reason(socket.gaierror(-2, "Name or service not known")) == "unknown host"
    assert reason(ValueError("two\n   lines")) == "two lines"


def test_a_stale_record_is_named_in_the_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    record(tmp_path, {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}, command="up")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "LOG_"))}
    status, output = run_on_terminal(
        [*RAG, "dlq", "list", "--data-dir", str(tmp_path)], env, timeout=60
    )
    assert status == 1
    assert output.strip() == (
        f"rag: cannot connect to Kafka at 127.0.0.1:{port}: connection refused (read from"
        f" {tmp_path}/stack.env: is the `rag up` that wrote it running? else set"
        " KAFKA_BOOTSTRAP_SERVERS)"
    )
