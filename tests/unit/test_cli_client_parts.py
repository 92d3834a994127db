"""Pieces of the ``rag`` client commands that need no server: the event
stream parser, terminal-safe text, which gateway a command talks to, and
the session file's mode."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ragstream.client import credentials
from ragstream.client.chat import sse_events
from ragstream.client.credentials import Login
from ragstream.client.errors import ClientError
from ragstream.client.terminal import printable


def test_sse_events_skip_pings_and_join_data_lines() -> None:
    lines = [": ping", "event: token", 'data: {"text": "a"}', "", "data: one", "data: two", ""]
    lines += ["event: done", "data: {}"]  # no blank line before the end: still an event
    assert list(sse_events(lines)) == [
        ("token", '{"text": "a"}'),
        ("message", "one\ntwo"),
        ("done", "{}"),
    ]


def test_printable_drops_escape_sequences_but_keeps_layout() -> None:
    hostile = "Title\x1b]0;owned\x07 and \x1b[2J\x9bcleared\r\nnext\tcell"
    assert printable(hostile) == "Title]0;owned and [2Jcleared\nnext\tcell"
    assert printable("café — naïve [1]") == "café — naïve [1]"


def test_the_url_comes_from_the_flag_then_the_login_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login = Login("http://stored:8000", "u", "a", "r", 0.0)
    monkeypatch.setenv("RAG_URL", "http://env:8000/")
    assert credentials.resolve_url("http://flag:1/", login) == "http://flag:1"
    assert credentials.resolve_url(None, login) == "http://stored:8000"
    assert credentials.resolve_url(None, None) == "http://env:8000"
    monkeypatch.delenv("RAG_URL")
    assert credentials.resolve_url(None, None) == "http://127.0.0.1:8000"


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
