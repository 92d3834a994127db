"""Conversations end to end, through the real gateway and workers: asked
and continued on chat, listed (titled by their first question, the most
recently active first, in pages), read turn by turn, renamed, deleted with
their turns; and the same from the ``rag`` command."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_cli_client import rag, sign_in
from tests.support.api import User, answer_text, new_user, stream_chat, upload, wait_for_status
from tests.support.processes import Component

HANDBOOK = b"""# Handbook

Employees must submit travel expense claims within 30 days of returning.
Every engineer receives a laptop on the first day. Monitors are ordered through the IT portal.
The office opens at 8 in the morning and closes at 7 in the evening.
"""


async def ready_user(client: httpx.AsyncClient) -> User:
    user = await new_user(client, "talker")
    doc = await upload(client, user, "handbook.md", HANDBOOK)
    assert (await wait_for_status(client, user, doc))["status"] == "indexed"
    return user


async def ask(
    client: httpx.AsyncClient, user: User, message: str, conversation: str | None = None
) -> tuple[str, int, str]:
    """(conversation id, turn, answer) of a streamed chat."""
    body: dict[str, Any] = {"message": message}
    if conversation:
        body["conversation_id"] = conversation
    response, events = await stream_chat(client, user, body)
    assert response.status_code == 200, response.text
    done = events[-1]
    assert done.event == "done", events
    return str(done.data["conversation_id"]), done.data["turn"], answer_text(events)


async def listing(client: httpx.AsyncClient, user: User, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/conversations", params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_ask_continue_list_read_rename_delete(client: httpx.AsyncClient) -> None:
    user = await ready_user(client)
    first, turn, answer = await ask(client, user, "  How many days   do I have for expense claims?")
    assert turn == 1 and "30 days" in answer
    other, other_turn, _ = await ask(client, user, "When does the office open?")
    assert other_turn == 1 and other != first
    # Continued: the same conversation, the next turn, and the most recent again.
    again, turn, _ = await ask(client, user, "And what about monitors?", first)
    assert (again, turn) == (first, 2)

    page = await listing(client, user)
    assert page["next_cursor"] is None
    assert [c["id"] for c in page["conversations"]] == [first, other]
    newest = page["conversations"][0]
    assert newest["title"] == "How many days do I have for expense claims?"
    assert newest["turn_count"] == 2
    assert newest["last_activity_at"] > page["conversations"][1]["last_activity_at"]

    read = await client.get(f"/api/conversations/{first}", headers=user.headers)
    assert read.status_code == 200, read.text
    detail = read.json()
    assert detail["turn_count"] == 2
    assert [t["turn"] for t in detail["turns"]] == [1, 2]
    assert detail["turns"][0]["question"] == "How many days   do I have for expense claims?"
    assert "30 days" in detail["turns"][0]["answer"]
    assert detail["turns"][0]["sources"][0]["filename"] == "handbook.md"
    assert detail["turns"][1]["question"] == "And what about monitors?"
    last = await client.get(f"/api/conversations/{first}?limit=1", headers=user.headers)
    assert [t["turn"] for t in last.json()["turns"]] == [2]

    renamed = await client.patch(
        f"/api/conversations/{first}", json={"title": "  Claims  "}, headers=user.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "Claims"
    # Renaming is not activity; a new turn keeps the chosen title.
    assert renamed.json()["last_activity_at"] == newest["last_activity_at"]
    await ask(client, user, "Who books hotel rooms?", first)
    [kept] = [c for c in (await listing(client, user))["conversations"] if c["id"] == first]
    assert (kept["title"], kept["turn_count"]) == ("Claims", 3)

    gone = await client.delete(f"/api/conversations/{first}", headers=user.headers)
    assert gone.status_code == 204, gone.text
    assert [c["id"] for c in (await listing(client, user))["conversations"]] == [other]
    for method in ("GET", "DELETE"):
        again_response = await client.request(
            method, f"/api/conversations/{first}", headers=user.headers
        )
        assert again_response.status_code == 404, again_response.text
    history = await client.get(
        "/api/chat/history", params={"conversation_id": first}, headers=user.headers
    )
    assert history.json() == []
    # Its id on chat again starts afresh: turn 1, titled by the new question.
    _, turn, _ = await ask(client, user, "Is there a laptop for engineers?", first)
    [fresh] = [c for c in (await listing(client, user))["conversations"] if c["id"] == first]
    assert (turn, fresh["turn_count"], fresh["title"]) == (
        1,
        1,
        "Is there a laptop for engineers?",
    )


async def test_pages_follow_activity_without_repeats(client: httpx.AsyncClient) -> None:
    user = await ready_user(client)
    made = [(await ask(client, user, f"Question {n}: when does it open?"))[0] for n in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await listing(client, user, **params)
        pages += 1
        assert len(page["conversations"]) <= 2
        seen += [c["id"] for c in page["conversations"]]
        if pages == 1:
            # Activity meanwhile moves the oldest to the top: not shown again below.
            await ask(client, user, "And on Saturdays?", made[0])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # The others once each, in order; the moved one on no later page.
    assert pages == 2
    assert seen == made[:0:-1]
    assert (await listing(client, user))["conversations"][0]["id"] == made[0]
    bad = await client.get("/api/conversations", params={"cursor": "nope"}, headers=user.headers)
    assert bad.status_code == 400, bad.text
    assert "cursor" in bad.json()["detail"]


async def test_answers_given_at_once_take_one_turn_each(client: httpx.AsyncClient) -> None:
    user = await ready_user(client)
    conversation = str(uuid.uuid4())
    questions = [f"When does the office open? ({n})" for n in range(3)]
    results = await asyncio.gather(*(ask(client, user, q, conversation) for q in questions))
    assert sorted(turn for _, turn, _ in results) == [1, 2, 3]
    detail = (await client.get(f"/api/conversations/{conversation}", headers=user.headers)).json()
    assert detail["turn_count"] == 3
    assert sorted(t["question"] for t in detail["turns"]) == sorted(questions)
    # Each question is stored with its own answer.
    by_turn = {turn: answer for _, turn, answer in results}
    assert all(t["answer"] == by_turn[t["turn"]] for t in detail["turns"])


async def test_whole_answer_names_its_turn(client: httpx.AsyncClient) -> None:
    user = await ready_user(client)
    conversation, _, _ = await ask(client, user, "When does the office open?")
    whole = await client.post(
        "/api/chat",
        json={"message": "And when does it close?", "conversation_id": conversation},
        headers=user.headers,
        timeout=60,
    )
    assert whole.status_code == 200, whole.text
    assert (whole.json()["conversation_id"], whole.json()["turn"]) == (conversation, 2)


async def test_cli_continues_lists_renames_and_deletes(
    client: httpx.AsyncClient, gateway: Component, tmp_path: Path
) -> None:
    user = await ready_user(client)
    assert sign_in(tmp_path, gateway, user).returncode == 0
    nothing = rag(tmp_path, "chat", "--continue", "When does the office open?")
    assert nothing.returncode == 1 and "no conversation to continue" in nothing.stderr
    first = rag(tmp_path, "chat", "--json", "When does the office open?")
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)["conversation_id"]
    other = json.loads(rag(tmp_path, "chat", "--json", "How long for claims?").stdout)
    # --continue alone: the last conversation; with an id, that one.
    last = rag(tmp_path, "chat", "--json", "--continue", "And monitors?")
    assert json.loads(last.stdout)["conversation_id"] == other["conversation_id"]
    given = rag(tmp_path, "chat", "--json", "--continue", started, "And when does it close?")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["conversation_id"] == started

    listed = rag(tmp_path, "conversations", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["turn_count"]) for r in rows] == [
        (started, 2),
        (other["conversation_id"], 2),
    ]
    table = rag(tmp_path, "conversations", "list")
    assert "When does the office open?" in table.stdout
    renamed = rag(tmp_path, "conversations", "rename", started, "Office hours")
    assert renamed.returncode == 0, renamed.stderr
    shown = rag(tmp_path, "conversations", "show", started)
    assert "Office hours" in shown.stdout and "2. And when does it close?" in shown.stdout
    deleted = rag(tmp_path, "conversations", "delete", started, str(uuid.uuid4()))
    assert deleted.returncode == 1
    assert f"deleted {started}" in deleted.stdout and "404" in deleted.stderr
    rows = json.loads(rag(tmp_path, "conversations", "list", "--json").stdout)
    assert [r["id"] for r in rows] == [other["conversation_id"]]
    two_questions = rag(tmp_path, "chat", "one question", "another")
    assert two_questions.returncode == 2 and "one question" in two_questions.stderr
