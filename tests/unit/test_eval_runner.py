"""rag eval's client side (ragstream.evaluation.runner), against a scripted
HTTP transport: what it does when the gateway's answers change mid-run."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ragstream.api import ApiError
from ragstream.evaluation.dataset import Dataset, Gold, Question
from ragstream.evaluation.runner import CONFIGS, ask

QUESTION = Question("q1", "When does the car park close?", (Gold("parking.md", "closes at 8pm"),))
DATASET = Dataset("tiny", Path("."), [], (QUESTION,))
SOURCE = {"filename": "parking.md", "text": "The car park closes at 8pm."}


class Gateway:
    """Tokens ``t1``, ``t2``, ... from each login; chat refuses all but the newest."""

    def __init__(self, refuse_always: bool = False) -> None:
        self.logins = 0
        self.refuse_always = refuse_always
        self.chats: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/register":
            return httpx.Response(409)
        if request.url.path == "/api/auth/login":
            self.logins += 1
            return httpx.Response(200, json={"access_token": f"t{self.logins}"})
        self.chats.append(json.loads(request.content))
        current = request.headers["Authorization"] == f"Bearer t{self.logins}"
        if self.refuse_always or not current:
            return httpx.Response(401, json={"detail": "Invalid token"})
        return httpx.Response(200, json={"answer": "8pm [1]", "sources": [SOURCE]})


def _client(gateway: Gateway) -> httpx.Client:
    http = httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(gateway))
    http.headers["Authorization"] = "Bearer t0"
    gateway.logins = 1  # as if signed in once, long ago
    return http


def test_an_expired_token_is_renewed_once_and_the_question_asked_again() -> None:
    gateway = Gateway()
    outcome = ask(_client(gateway), DATASET, QUESTION, CONFIGS[2])
    assert not isinstance(outcome, str)
    assert outcome.documents == [("parking.md", True)]
    assert gateway.logins == 2
    assert len(gateway.chats) == 2
    assert gateway.chats[0]["stream_timeout"] == 300.0
    assert gateway.chats[0]["retrieval"] == "hybrid"


def test_a_refusal_that_survives_a_new_token_ends_the_run() -> None:
    gateway = Gateway(refuse_always=True)
    with pytest.raises(ApiError, match="401"):
        ask(_client(gateway), DATASET, QUESTION, CONFIGS[2])
    assert len(gateway.chats) == 2
