"""Pieces of the ``rag`` client commands that need no server: the event
stream parser, how ``rag chat`` folds the events into an answer and prints
it (a grounded one with its sources, a not-found one with the closest
passages), terminal-safe text, which gateway a command talks to, and the
session file's mode."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from ragstream.client import chat as chatting
from ragstream.client import credentials
from ragstream.client.chat import Answer, sse_events, sse_messages
from ragstream.client.credentials import Login
from ragstream.client.errors import ClientError
from ragstream.client.session import Session
from ragstream.client.terminal import printable
from ragstream.commands import client as commands


def test_sse_events_skip_pings_and_join_data_lines() -> None:
    lines = [": ping", "event: token", 'data: {"text": "a"}', "", "data: one", "data: two", ""]
    lines += ["event: done", "data: {}"]  # no blank line before the end: still an event
    assert list(sse_events(lines)) == [
        ("token", '{"text": "a"}'),
        ("message", "one\ntwo"),
        ("done", "{}"),
    ]


SOURCE = {"n": 1, "filename": "travel-policy.md", "section": "Travel policy", "text": "..."}
OTHER = {"n": 2, "filename": "handbook.txt", "page": 3, "text": "..."}
NOT_FOUND = (
    "I could not find an answer to that in your documents. The closest passages are"
    " listed as sources, but none of them answers it."
)


class FakeStream:
    """A Session whose POST /api/chat/stream replies with ``events``."""

    def __init__(self, events: list[tuple[str, dict[str, Any] | list[Any]]]) -> None:
        self.events = events

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[Any]:
        assert (method, path) == ("POST", "/api/chat/stream")
        lines: list[str] = []
        for event, data in self.events:
            lines += [f"event: {event}", f"data: {json.dumps(data)}", ""]

        class Response:
            headers = {"X-Conversation-ID": "c-1"}

            def iter_lines(self) -> Iterator[str]:
                return iter(lines)

        yield Response()


def asked(events: list[tuple[str, dict[str, Any] | list[Any]]]) -> tuple[Answer, list[str]]:
    tokens: list[str] = []
    session = cast(Session, FakeStream(events))
    return chatting.ask(session, "q?", None, None, tokens.append), tokens


def test_a_grounded_answer_keeps_its_tokens_sources_and_citations() -> None:
    answer, tokens = asked(
        [
            ("sources", [SOURCE, OTHER]),
            ("token", {"text": "Within 30 days ", "seq": 1}),
            ("token", {"text": "[1].", "seq": 2}),
            (
                "done",
                {"conversation_id": "c-2", "seq": 3, "cited": [1], "grounded": True, "turn": 4},
            ),
        ]
    )
    assert tokens == ["Within 30 days ", "[1]."]
    assert answer.text == "Within 30 days [1]." and answer.sources == [SOURCE, OTHER]
    assert answer.cited == [1] and answer.grounded is True and answer.error is None
    assert answer.as_json() == {
        "answer": "Within 30 days [1].",
        "sources": [SOURCE, OTHER],
        "conversation_id": "c-2",
        "cited": [1],
        "grounded": True,
        "error": None,
        "turn": 4,
    }


def test_a_not_found_answer_is_not_grounded_and_an_older_server_is() -> None:
    done = {"conversation_id": "c-2", "seq": 2, "cited": [], "grounded": False}
    answer, _ = asked([("sources", [SOURCE]), ("token", {"text": NOT_FOUND}), ("done", done)])
    assert answer.grounded is False and answer.cited == [] and answer.sources == [SOURCE]
    assert answer.as_json()["grounded"] is False
    # A server from before "grounded": its answers are grounded.
    older = {"conversation_id": "c-2", "seq": 2, "cited": [1]}
    answer, _ = asked([("sources", [SOURCE]), ("token", {"text": "Yes [1]."}), ("done", older)])
    assert answer.grounded is True and answer.as_json()["grounded"] is True
    # An unfinished answer is neither found nor not: it is an error.
    answer, _ = asked([("token", {"text": "Par"}), ("timeout", {"message": "no answer"})])
    assert answer.error == "no answer" and answer.as_json()["grounded"] is True


def run_chat(monkeypatch: pytest.MonkeyPatch, answer: Answer, *, as_json: bool = False) -> int:
    class FakeSession:
        def __init__(self, login: Any) -> None:
            pass

        def __enter__(self) -> FakeSession:
            return self

        def __exit__(self, *_: object) -> None:
            pass

    def fake_ask(session: Any, question: str, *args: Any, filters: Any = None) -> Answer:
        assert filters is None  # no --tag or --meta given
        on_token = args[2]
        if answer.text:
            on_token(answer.text)
        return answer

    monkeypatch.setattr(commands, "open_login", lambda url: None)
    monkeypatch.setattr(commands, "Session", FakeSession)
    monkeypatch.setattr(chatting, "ask", fake_ask)
    return commands.chat(["q?"], as_json=as_json)


def test_chat_prints_a_grounded_answer_then_its_sources(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = Answer("Within 30 days [1].", [SOURCE, OTHER], "c-1", [1])
    assert run_chat(monkeypatch, answer) == 0
    printed = capsys.readouterr().out
    text, _, sources = printed.partition("\nSources\n")
    assert text.strip() == "Within 30 days [1]."
    assert sources.splitlines() == [
        "  [1] travel-policy.md — Travel policy",
        "  [2] handbook.txt, page 3",
    ]
    assert "Closest passages" not in printed


def test_chat_lists_the_closest_passages_of_a_not_found_answer_as_not_cited(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = Answer(NOT_FOUND, [SOURCE, OTHER], "c-1", [], grounded=False)
    assert run_chat(monkeypatch, answer) == 0
    printed = capsys.readouterr().out
    text, _, passages = printed.partition("\nClosest passages (not cited)\n")
    assert text.strip() == NOT_FOUND
    assert passages.splitlines() == [
        "  [1] travel-policy.md — Travel policy",
        "  [2] handbook.txt, page 3",
    ]
    assert "Sources" not in printed

    # With no passages at all (no documents), nothing is listed.
    assert run_chat(monkeypatch, Answer(NOT_FOUND, [], "c-1", [], grounded=False)) == 0
    assert capsys.readouterr().out.strip() == NOT_FOUND

    assert run_chat(monkeypatch, answer, as_json=True) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["grounded"] is False and body["cited"] == [] and body["answer"] == NOT_FOUND
    assert [s["filename"] for s in body["sources"]] == ["travel-policy.md", "handbook.txt"]


def test_printable_drops_escape_sequences_but_keeps_layout() -> None:
    hostile = "Title\x1b]0;owned\x07 and \x1b[2J\x9bcleared\r\nnext\tcell"
    assert printable(hostile) == "Title]0;owned and [2Jcleared\nnext\tcell"
    assert printable("café — naïve [1]") == "café — naïve [1]"


def test_the_url_comes_from_the_flag_then_the_login_then_the_environment_then_rag_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    login = Login("http://stored:8000", "u", "a", "r", 0.0)
    monkeypatch.setenv("RAG_URL", "http://env:8000/")
    assert credentials.resolve_url("http://flag:1/", login) == "http://flag:1"
    assert credentials.resolve_url(None, login) == "http://stored:8000"
    assert credentials.resolve_url(None, None) == "http://env:8000"
    monkeypatch.delenv("RAG_URL")
    assert credentials.resolve_url(None, None) == "http://127.0.0.1:8000"
    # `rag up` on another port recorded where its gateway is.
    (tmp_path / ".rag").mkdir()
    (tmp_path / ".rag" / "stack.env").write_text("RAG_URL='http://127.0.0.1:8123'\n")
    assert credentials.resolve_url(None, None) == "http://127.0.0.1:8123"


def test_the_session_file_is_private_even_over_a_readable_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = credentials.path()
    assert path == tmp_path / "ragstream" / "login.json"
    path.parent.mkdir()
    path.write_text("{}")
    path.chmod(0o644)
    path.with_suffix(".tmp").write_text("")
    path.with_suffix(".tmp").chmod(0o644)
    credentials.save(Login("http://x", "u", "access", "refresh", 1.0))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["refresh_token"] == "refresh"
    assert credentials.load() == Login("http://x", "u", "access", "refresh", 1.0)


def test_an_unreadable_session_file_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    credentials.path().parent.mkdir()
    credentials.path().write_text("{not json")
    with pytest.raises(ClientError, match=r"unreadable .*run `rag login` again"):
        credentials.load()


def test_a_reset_starts_the_answer_over() -> None:
    resets: list[bool] = []
    session = cast(
        Session,
        FakeStream(
            [
                ("sources", [OTHER]),
                ("token", {"text": "Half an ans", "seq": 1}),
                ("reset", {"attempt": 2, "message": "starts again"}),
                ("sources", [SOURCE]),
                ("token", {"text": "Within 30 days [1].", "seq": 1}),
                ("done", {"conversation_id": "c-3", "seq": 2, "cited": [1], "grounded": True}),
            ]
        ),
    )
    tokens: list[str] = []
    answer = chatting.ask(
        session, "q?", None, None, tokens.append, on_reset=lambda: resets.append(True)
    )
    assert resets == [True] and tokens == ["Half an ans", "Within 30 days [1]."]
    assert answer.text == "Within 30 days [1]." and answer.sources == [SOURCE]
    assert answer.error is None


def test_sse_messages_carry_ids_and_drop_a_message_cut_short() -> None:
    lines = ["event: token", "id: 41", 'data: {"text": "a"}', "", "event: token", "id: 42"]
    lines += ['data: {"text": "b"}']  # the connection dropped before its blank line
    assert list(sse_messages(lines)) == [("token", '{"text": "a"}', "41")]
