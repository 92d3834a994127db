"""The ``rag`` client commands as a person runs them: the installed ``rag``
script in a subprocess, a home folder of its own, a real gateway and
workers behind it. Sign in, upload a folder, ask (and be told when the
documents do not answer), list, delete; an expired or refused access token
is renewed without the user noticing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import PASSWORD, User, new_user
from tests.support.processes import Component, free_port

RAG = str(Path(sys.executable).parent / "rag")

POLICY = b"""# Travel policy

Employees must submit travel expense claims within 30 days of returning.
Meals are reimbursed up to 45 euros per day.
"""
HANDBOOK = b"""Equipment handbook

Every engineer receives a laptop on the first day. Monitors are ordered through the IT portal.
"""


def rag(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config")}
    env.pop("RAG_URL", None)
    return subprocess.run(
        [RAG, *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def login_file(home: Path) -> Path:
    return home / "config" / "ragstream" / "login.json"


def stored(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(login_file(home).read_text())
    return data


def sign_in(home: Path, gateway: Component, user: User) -> subprocess.CompletedProcess[str]:
    return rag(
        home,
        "login",
        "--url",
        gateway.base_url or "",
        "-u",
        user.username,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: exactly one line, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


async def test_login_keeps_a_private_session_that_the_api_accepts(
    tmp_path: Path, gateway: Component, client: httpx.AsyncClient
) -> None:
    user = await new_user(client, "cli")
    result = sign_in(tmp_path, gateway, user)
    assert result.returncode == 0, result.stderr
    assert f"as {user.username}" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr

    path = login_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    session = stored(tmp_path)
    assert session["url"] == gateway.base_url and session["username"] == user.username
    assert session["expires_at"] > time.time() + 60
    me = await client.get(
        "/api/auth/verify", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["username"] == user.username

    wrong = rag(
        tmp_path,
        "login",
        "--url",
        gateway.base_url or "",
        "-u",
        user.username,
        "--password-stdin",
        stdin="not-the-password\n",
    )
    assert one_line(wrong) == "rag: login refused: 401 Invalid username or password"
    assert stored(tmp_path) == session  # a failed login keeps the session there was

    out = rag(tmp_path, "logout")
    assert out.returncode == 0 and f"logged out of {gateway.base_url}" in out.stdout
    assert not path.exists()
    # The session is revoked on the server, not only forgotten here.
    refresh = await client.post(
        "/api/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert one_line(rag(tmp_path, "docs", "list")) == "rag: not logged in: run `rag login` first"


def _folder(root: Path) -> Path:
    folder = root / "papers"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "travel-policy.md").write_bytes(POLICY)
    (folder / "nested" / "deeper" / "handbook.txt").write_bytes(HANDBOOK)
    (folder / "nested" / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF at all")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "picture.png").write_bytes(b"\x89PNG not a document")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.md").write_bytes(b"# not to be uploaded")
    return folder


def _row(stdout: str, name: str) -> str:
    [line] = [line for line in stdout.splitlines() if name in line]
    return line


async def test_ingest_chat_list_and_delete(
    tmp_path: Path, gateway: Component, client: httpx.AsyncClient
) -> None:
    user = await new_user(client, "cli")
    assert sign_in(tmp_path, gateway, user).returncode == 0

    began = time.monotonic()
    ingest = rag(tmp_path, "ingest", str(_folder(tmp_path)))
    seconds = time.monotonic() - began
    # One failed (unparseable) and one refused (empty): the run failed.
    assert ingest.returncode == 1, ingest.stdout + ingest.stderr
    assert "Traceback" not in ingest.stderr
    assert "indexed" in _row(ingest.stdout, "travel-policy.md")
    assert "indexed" in _row(ingest.stdout, "handbook.txt")
    assert "nested/deeper/handbook.txt" in ingest.stdout  # shown where it was found
    assert "failed" in _row(ingest.stdout, "broken.pdf")
    assert "refused" in _row(ingest.stdout, "empty.txt")
    assert "the file is empty" in _row(ingest.stdout, "empty.txt")
    assert "2 indexed, 2 not" in ingest.stdout
    assert "skipped 1 files of unsupported types" in ingest.stderr
    print(f"rag ingest of 4 files took {seconds:.1f} s")

    listed = rag(tmp_path, "docs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    docs = {d["filename"]: d for d in json.loads(listed.stdout)}
    assert set(docs) == {"travel-policy.md", "handbook.txt", "broken.pdf"}
    assert docs["travel-policy.md"]["status"] == "indexed"
    assert docs["travel-policy.md"]["chunks"] >= 1
    assert docs["broken.pdf"]["status"] == "failed"
    table = rag(tmp_path, "docs", "list")
    assert docs["handbook.txt"]["id"] in table.stdout and "indexed" in table.stdout

    question = "How many days do I have to submit travel expense claims?"
    streamed = rag(tmp_path, "chat", question)
    assert streamed.returncode == 0, streamed.stderr
    answer, _, sources = streamed.stdout.partition("\nSources\n")
    assert "within 30 days" in answer and "[1]" in answer
    assert sources.splitlines()[0].strip() == "[1] travel-policy.md — Travel policy"

    as_json = rag(tmp_path, "chat", question, "--json", "--top-k", "1")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert "within 30 days" in body["answer"] and body["error"] is None
    assert [s["filename"] for s in body["sources"]] == ["travel-policy.md"]  # top-k 1
    uuid.UUID(body["conversation_id"])
    assert 1 in body["cited"] and body["grounded"] is True

    # Not in the documents: said so, nothing cited, the closest passages listed.
    off_topic = "What is the capital of France?"
    declined = rag(tmp_path, "chat", off_topic)
    assert declined.returncode == 0, declined.stderr
    answer, _, passages = declined.stdout.partition("\nClosest passages (not cited)\n")
    assert answer.startswith("I could not find an answer to that in your documents.")
    assert "\nSources\n" not in declined.stdout and passages.strip(), declined.stdout
    assert all(line.startswith("  [") for line in passages.splitlines()), passages
    declined_json = json.loads(rag(tmp_path, "chat", off_topic, "--json").stdout)
    assert declined_json["grounded"] is False and declined_json["cited"] == []
    assert declined_json["sources"] and declined_json["error"] is None

    # Filters on chat: a tag no document has leaves nothing to answer from.
    untagged = json.loads(rag(tmp_path, "chat", question, "--json", "--tag", "no-such").stdout)
    assert untagged["sources"] == [] and untagged["grounded"] is False, untagged
    malformed = rag(tmp_path, "chat", question, "--meta", "no-equals-sign")
    assert malformed.returncode != 0 and "expected key=value" in malformed.stderr

    # rag search: the ranked passages, each stage's score, no answer.
    found = rag(tmp_path, "search", question, "--retrieval", "hybrid", "--reranking", "none")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == " 1. travel-policy.md — Travel policy", found.stdout
    assert "dense " in lines[1] and "bm25 " in lines[1] and "fused " in lines[1]
    assert "within 30 days" in lines[2]
    ranked = json.loads(rag(tmp_path, "search", question, "--json", "--top-k", "1").stdout)
    assert [p["filename"] for p in ranked] == ["travel-policy.md"]
    assert ranked[0]["rank"] == 1 and ranked[0]["scores"]["dense"] > 0
    only = rag(tmp_path, "search", question, "--json", "--document", docs["handbook.txt"]["id"])
    assert {p["filename"] for p in json.loads(only.stdout)} <= {"handbook.txt"}

    gone = docs["travel-policy.md"]["id"]
    deleted = rag(tmp_path, "docs", "delete", gone)
    assert deleted.returncode == 0 and f"deleted {gone}" in deleted.stdout
    left = {d["id"] for d in json.loads(rag(tmp_path, "docs", "list", "--json").stdout)}
    assert gone not in left and docs["handbook.txt"]["id"] in left
    assert one_line(rag(tmp_path, "docs", "delete", gone)) == f"rag: {gone}: 404 document not found"


async def test_expired_and_refused_access_tokens_are_renewed(
    tmp_path: Path, gateway: Component, client: httpx.AsyncClient
) -> None:
    user = await new_user(client, "cli")
    assert sign_in(tmp_path, gateway, user).returncode == 0
    first = stored(tmp_path)

    # Expired by the clock: renewed before the request.
    login_file(tmp_path).write_text(json.dumps({**first, "expires_at": time.time() - 5}))
    assert rag(tmp_path, "docs", "list", "--json").returncode == 0
    second = stored(tmp_path)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_at"] > time.time() + 60
    assert stat.S_IMODE(login_file(tmp_path).stat().st_mode) == 0o600

    # Refused by the server (401) although not yet expired: renewed, retried.
    login_file(tmp_path).write_text(json.dumps({**second, "access_token": "not-a-token"}))
    listed = rag(tmp_path, "docs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    third = stored(tmp_path)
    assert third["refresh_token"] != second["refresh_token"]
    verify = await client.get(
        "/api/auth/verify", headers={"Authorization": f"Bearer {third['access_token']}"}
    )
    assert verify.status_code == 200

    # A refresh token used up (here: the first one, replayed) revokes the
    # session; the command says to sign in again.
    login_file(tmp_path).write_text(json.dumps({**first, "expires_at": time.time() - 5}))
    expired = one_line(rag(tmp_path, "docs", "list"))
    assert expired == "rag: the session has expired or was revoked: run `rag login`"
    assert not login_file(tmp_path).exists()


async def test_api_errors_and_an_unreachable_gateway_are_one_line(
    tmp_path: Path, gateway: Component, client: httpx.AsyncClient
) -> None:
    user = await new_user(client, "cli")
    assert sign_in(tmp_path, gateway, user).returncode == 0
    unknown = rag(tmp_path, "chat", "hello?", "--conversation", "not-a-uuid")
    assert one_line(unknown).startswith("rag: 422 ")
    # No reply within a millisecond: the stream's timeout event ends the command.
    late = rag(tmp_path, "chat", "hello?", "--timeout", "0.001")
    assert one_line(late) == "rag: the answer did not complete: no answer for 0.001 seconds"
    late_json = rag(tmp_path, "chat", "hello?", "--timeout", "0.001", "--json")
    assert late_json.returncode == 1
    assert json.loads(late_json.stdout)["error"] == "no answer for 0.001 seconds"
    assert one_line(rag(tmp_path, "ingest", str(tmp_path / "missing"))) == (
        f"rag: {tmp_path / 'missing'}: no such file or folder"
    )

    dead = f"http://127.0.0.1:{free_port()}"
    elsewhere = tmp_path / "elsewhere"
    refused = rag(elsewhere, "login", "--url", dead, "-u", "x", "--password-stdin", stdin="pw\n")
    assert one_line(refused) == (
        f"rag: cannot reach {dead} (connection failed): is the gateway running?"
        " Pass --url or set RAG_URL"
    )
    assert not login_file(elsewhere).exists()
    # A stored session whose gateway went away: the same line, for any command.
    login_file(elsewhere).parent.mkdir(parents=True)
    login_file(elsewhere).write_text(json.dumps({**stored(tmp_path), "url": dead}))
    for args in (["chat", "hello?"], ["docs", "list"], ["ingest", str(_folder(elsewhere))]):
        assert one_line(rag(elsewhere, *args)).startswith(f"rag: cannot reach {dead}"), args
