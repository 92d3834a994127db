"""Answers a user can trust, end to end over HTTP on the sample policy:
whole sentences citing the passage that says it, both parts of a compound
question answered, and "not in your documents" (``grounded: false``, nothing
cited) on every answer path when the documents do not answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.api import User, answer_text, new_user, stream_chat, upload, wait_for_status

SAMPLES = Path(__file__).parents[2] / "samples"
NOT_FOUND = "I could not find an answer to that in your documents."


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    user = await new_user(client, "answers")
    for name in ("expense-policy.md", "onboarding.txt"):
        doc = await upload(client, user, name, (SAMPLES / name).read_bytes())
        assert (await wait_for_status(client, user, doc))["status"] == "indexed"
    return user


async def _ask(client: httpx.AsyncClient, user: User, question: str) -> dict[str, object]:
    response = await client.post("/api/chat", headers=user.headers, json={"message": question})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _cited_files(body: dict[str, object]) -> set[str]:
    sources = body["sources"]
    assert isinstance(sources, list) and isinstance(body["cited"], list)
    return {sources[n - 1]["filename"] for n in body["cited"]}


async def test_a_compound_question_gets_both_parts_in_whole_sentences(
    client: httpx.AsyncClient, user: User
) -> None:
    question = "How many days do I have to submit an expense report, and who approves it?"
    body = await _ask(client, user, question)
    answer = str(body["answer"])
    assert body["grounded"] is True
    assert _cited_files(body) == {"expense-policy.md"}
    # Whole sentences, the hard-wrapped line joined, the markup gone.
    assert "Submit every expense report in Ledgerly within 30 calendar days of the purchase." in (
        answer
    )
    assert "Your direct manager approves reports up to EUR 2,500." in answer
    assert "**" not in answer


async def test_a_heading_is_context_never_the_answer(client: httpx.AsyncClient, user: User) -> None:
    body = await _ask(client, user, "what's the per diem for meals in london")
    answer = str(body["answer"])
    assert body["grounded"] is True
    assert "per diem of EUR 60 per day for meals" in answer
    assert '"Meals and per diem"' not in answer
    assert _cited_files(body) == {"expense-policy.md"}


async def test_a_question_the_documents_do_not_answer_is_declined_on_every_path(
    client: httpx.AsyncClient, user: User
) -> None:
    question = "What is the capital of France?"
    body = await _ask(client, user, question)
    assert str(body["answer"]).startswith(NOT_FOUND)
    assert body["grounded"] is False and body["cited"] == []
    assert body["sources"], "the closest passages are still returned to look at"

    response, events = await stream_chat(client, user, {"message": question})
    assert response.status_code == 200
    assert events[-1].event == "done"
    assert events[-1].data["grounded"] is False and events[-1].data["cited"] == []
    assert answer_text(events).startswith(NOT_FOUND)

    completion = await client.post(
        "/v1/chat/completions",
        headers=user.headers,
        json={"model": "ragstream", "messages": [{"role": "user", "content": question}]},
    )
    assert completion.status_code == 200, completion.text
    data = completion.json()
    assert data["grounded"] is False and data["cited"] == []
    assert data["choices"][0]["message"]["content"].startswith(NOT_FOUND)


async def test_an_answer_is_grounded_on_the_stream_too(
    client: httpx.AsyncClient, user: User
) -> None:
    response, events = await stream_chat(
        client, user, {"message": "How many days do I have to submit an expense report?"}
    )
    assert response.status_code == 200
    done = events[-1]
    assert done.event == "done" and done.data["grounded"] is True and done.data["cited"]
