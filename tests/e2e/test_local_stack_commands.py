"""A newcomer's first hour (issue 24), against one `rag up` on a terminal:
the operator commands find the running stack through what it recorded in
its data folder, without copying a secret; a server that does not answer,
or refuses the credentials, is one line naming it, through a pipe and on a
terminal; the banner names the web page first; a client polling the API
does not scroll the terminal while the JSON log keeps every request."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ragstream.localstack.ports import free_port_pair, free_ports
from ragstream.stack_env import read
from tests.support.terminal import Terminal, run_on_terminal

RAG = [sys.executable, "-m", "ragstream"]
PASSWORD = "a-long-password"
DOCUMENT = b"Expense claims must be filed within 30 days of the trip, with the receipts."
# What a shell of someone who never exported anything has: none of the
# settings `rag up` picks for its servers.
UNSET = ("SECRET_KEY", "BLOB_DIR", "KAFKA_TOPIC_PREFIX", "KAFKA_ENABLE_IDEMPOTENCE", "CHROMA_PATH")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_URL", "_SERVERS")) and k not in UNSET and not k.startswith("LOG_")
    }
    return {**env, **extra}


@dataclass
class Stack:
    home: Path  # the folder the commands run in; `rag up`'s data is home/.rag
    api: int
    postgres: int
    redis: int
    terminal: Terminal

    @property
    def data_dir(self) -> Path:
        return self.home / ".rag"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    def rag(
        self,
        *args: str,
        stdin: str = "",
        cwd: Path | None = None,
        timeout: float = 300,
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RAG, *args],
            env=clean_env(**extra),
            cwd=cwd or self.home,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("newcomer")
    kafka = free_port_pair()
    api, postgres, redis, chroma = [p for p in free_ports(6) if p not in (kafka, kafka + 1)][:4]
    ports = {
        "--port": api,
        "--kafka-port": kafka,
        "--postgres-port": postgres,
        "--redis-port": redis,
        "--chroma-port": chroma,
    }
    options = [str(part) for pair in ports.items() for part in pair]
    terminal = Terminal(
        [*RAG, "up", "--data-dir", str(home / ".rag"), *options],
        env=clean_env(),
        log=home / "terminal.log",
    )
    try:
        terminal.wait_for(lambda text: "ragstream is up" in text, timeout=300)
        yield Stack(home, api, postgres, redis, terminal)
    finally:
        terminal.process.send_signal(signal.SIGINT)
        try:
            terminal.process.wait(timeout=90)
        finally:
            terminal.close()


def test_the_banner_names_the_web_page_first(stack: Stack) -> None:
    box = stack.terminal.text().split("ragstream is up", 1)[1]
    first_url = next(line for line in box.splitlines() if "http://" in line)
    assert "web page" in first_url and f"{stack.base}/" in first_url, box


def test_up_records_how_to_reach_the_stack_for_its_owner_only(stack: Stack) -> None:
    path = stack.data_dir / "stack.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    recorded = read(stack.data_dir)
    assert recorded is not None
    password = (stack.data_dir / "postgres" / "password").read_text().strip()
    assert recorded["DATABASE_URL"] == f"postgresql://rag:{password}@127.0.0.1:{stack.postgres}/rag"
    assert recorded["REDIS_URL"] == f"redis://127.0.0.1:{stack.redis}/0"
    assert recorded["BLOB_DIR"] == str(stack.data_dir / "blobs")
    assert recorded["KAFKA_TOPIC_PREFIX"] == "rag"
    assert recorded["RAG_URL"] == stack.base
    assert "SECRET_KEY" not in recorded


def _sign_in(stack: Stack, username: str) -> dict[str, str]:
    login = httpx.post(
        f"{stack.base}/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _upload(stack: Stack, headers: dict[str, str]) -> str:
    files = {"file": ("claims.txt", DOCUMENT, "text/plain")}
    uploaded = httpx.post(f"{stack.base}/api/documents", headers=headers, files=files)
    assert uploaded.status_code == 202, uploaded.text
    doc_id: str = uploaded.json()["id"]
    return doc_id


def _wait_indexed(stack: Stack, headers: dict[str, str], doc_id: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        doc = httpx.get(f"{stack.base}/api/documents/{doc_id}", headers=headers).json()
        if doc["status"] in ("indexed", "failed"):
            assert doc["status"] == "indexed", doc
            return
        time.sleep(0.3)
    raise AssertionError(f"{doc_id} never indexed")


def _eval_set(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "parking.md").write_text(
        "# Parking\n\nThe visitor car park closes at 8pm and the barrier code is 4471.\n"
    )
    gold = [{"doc": "parking.md", "quote": "The visitor car park closes at 8pm"}]
    question = {
        "id": "q1",
        "question": "When does the visitor car park close?",
        "gold": gold,
        "facts": ["8pm"],
    }
    (root / "questions.jsonl").write_text(json.dumps(question) + "\n")
    return root


def test_every_operator_command_reaches_the_local_stack_unaided(stack: Stack) -> None:
    def ok(*args: str, stdin: str = "", cwd: Path | None = None) -> str:
        done = stack.rag(*args, stdin=stdin, cwd=cwd)
        assert done.returncode == 0, f"rag {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    ok("migrate")
    admin = ["--username", "boss", "--tenant", "acme", "--admin", "--password-stdin"]
    made = ok("user", "create", *admin, stdin=PASSWORD + "\n")
    assert "admin boss" in made and "new tenant acme" in made
    headers = _sign_in(stack, "boss")
    _wait_indexed(stack, headers, _upload(stack, headers))

    assert "reindex: 1/1 documents done" in ok("reindex", "--tenant", "acme")
    assert "indexed documents of all tenants" in ok("reindex", "--all", "--no-wait")
    ok("reconcile", "--dry-run")  # BLOB_DIR and Chroma: the stack's, so nothing is refused
    # From anywhere, naming the folder.
    elsewhere = stack.home / "elsewhere"
    elsewhere.mkdir()
    assert ok("dlq", "list", "--data-dir", str(stack.data_dir), cwd=elsewhere).endswith(
        "0 letters\n"
    )
    assert "would replay 0 letters" in ok("dlq", "replay", "--dry-run")
    figures = stack.home / "eval.json"
    dataset = _eval_set(stack.home / "tiny")
    ok("eval", "--dataset", str(dataset), "--configs", "lexical", "--json", str(figures))
    [row] = json.loads(figures.read_text())
    assert row["config"] == "lexical" and row["skipped"] is None


def _closed_port() -> int:
    return free_ports(1)[0]  # nothing listens on it once the probe socket closed


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("service", ["PostgreSQL", "Kafka", "Redis", "Chroma"])
def test_a_server_that_does_not_answer_is_one_line(
    stack: Stack, service: str, terminal: bool
) -> None:
    wrong = "not-the-password-9f8e7d"
    closed = _closed_port()
    args: list[str]
    if service == "PostgreSQL":  # the environment wins over the recorded settings
        env = {"DATABASE_URL": f"postgresql://rag:{wrong}@127.0.0.1:{stack.postgres}/rag"}
        args, where = ["reindex", "--all"], f"127.0.0.1:{stack.postgres}"
        why = 'password authentication failed for user "rag" (is DATABASE_URL right?'
    elif service == "Kafka":
        env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}"}
        args, where = ["dlq", "list"], f"127.0.0.1:{closed}"
        why = "connection refused (is KAFKA_BOOTSTRAP_SERVERS right?"
    elif service == "Chroma":
        env = {"CHROMA_URL": f"http://127.0.0.1:{closed}"}
        args, where = ["migrate"], f"127.0.0.1:{closed}"
        why = "connection refused (is CHROMA_URL right?"
    else:  # a user Redis does not know: checked before `rag up` starts anything
        env = {"REDIS_URL": f"redis://someone:{wrong}@127.0.0.1:{stack.redis}/0"}
        args = ["up", "--data-dir", str(stack.home / "second"), "--port", str(closed)]
        where = f"127.0.0.1:{stack.redis}"
        why = "invalid username-password pair or user is disabled. (is REDIS_URL right? unset it"
    if terminal:
        status, output = run_on_terminal(
            [*RAG, *args], clean_env(**env), cwd=stack.home, timeout=60
        )
    else:
        done = stack.rag(*args, timeout=60, **env)
        status, output = done.returncode, done.stderr
    assert status == 1, output
    assert "Traceback" not in output and wrong not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"rag: cannot connect to {service} at {where}: "), output
    assert why in lines[0], output


def _requests_finished(text: str) -> int:
    return text.count("Request finished")


def test_a_polling_client_does_not_scroll_the_terminal(stack: Stack) -> None:
    user = {"username": "poller", "password": PASSWORD}
    assert httpx.post(f"{stack.base}/api/auth/register", json=user).status_code == 201
    headers = _sign_in(stack, "poller")
    doc_id = _upload(stack, headers)
    log = stack.data_dir / "logs" / "gateway.log"
    time.sleep(1)  # lines of earlier requests are out
    shown_before, kept_before = len(stack.terminal.text()), log.stat().st_size
    polls = 60
    with httpx.Client(base_url=stack.base, headers=headers) as client:
        for _ in range(polls):
            assert client.get(f"/api/documents/{doc_id}").status_code == 200
            assert client.get("/health").status_code == 200
        # A write and an auth failure still show.
        shared = client.patch(f"/api/documents/{doc_id}", json={"visibility": "tenant"})
        assert shared.status_code == 200, shared.text
        refused = client.get("/api/documents", headers={"Authorization": "Bearer nonsense"})
        assert refused.status_code == 401
    stack.terminal.wait_for(lambda text: "PATCH" in text[shown_before:], timeout=10)
    time.sleep(1)
    shown = stack.terminal.text()[shown_before:]
    with log.open("rb") as kept_file:
        kept_file.seek(kept_before)
        kept = [json.loads(line) for line in kept_file.read().decode().splitlines()]
    finished = [k for k in kept if k["event"] == "Request finished"]
    print(
        f"\n{2 * polls + 2} requests: {_requests_finished(shown)} access lines on the"
        f" terminal, {len(finished)} in the JSON log"
    )
    assert _requests_finished(shown) == 2, shown  # the PATCH and the 401
    assert "401" in shown
    assert len(finished) == 2 * polls + 2
    assert {k["level"] for k in finished} == {"INFO"}
    assert "_quiet_on_terminal" not in log.read_text()
