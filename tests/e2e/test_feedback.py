"""Feedback on answers end to end, through the real gateway and workers: a
user rates a turn's answer (one rating per turn, a new one replacing it),
stored with the turn and shown with it, published on ``rag.feedback``,
counted in ``/metrics``, listed and exported (JSON, CSV) by the tenant's
admins and no one else, gone with its conversation; and from ``rag``."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ragstream.evaluation.dataset import DatasetError, _question
from tests.e2e.test_cli_client import rag, sign_in
from tests.e2e.test_conversations import ask, ready_user
from tests.support.api import User, member_of, new_user, upload, wait_for_status
from tests.support.kafka import read_until
from tests.support.processes import Component

HANDBOOK = b"""# Handbook

Employees must submit travel expense claims within 30 days of returning.
The office opens at 8 in the morning and closes at 7 in the evening.
"""


@pytest.fixture
async def db(app_env: dict[str, str]) -> Any:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


def feedback_url(conversation: str, turn: int) -> str:
    return f"/api/conversations/{conversation}/turns/{turn}/feedback"


def counted(metrics: str, rating: str) -> float:
    found = re.search(rf'^rag_feedback_total\{{rating="{rating}"\}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def test_rate_replace_read_publish_and_count(
    client: httpx.AsyncClient, app_env: dict[str, str], db: asyncpg.Pool
) -> None:
    user = await ready_user(client)
    conversation, turn, answer = await ask(client, user, "How long do I have for claims?")
    metrics = (await client.get("/metrics")).text
    ups, downs = counted(metrics, "up"), counted(metrics, "down")

    up = await client.put(
        feedback_url(conversation, turn), json={"rating": "up"}, headers=user.headers
    )
    assert up.status_code == 200, up.text
    assert (up.json()["rating"], up.json()["comment"], up.json()["wrong_source"]) == (
        "up",
        None,
        None,
    )
    down = await client.put(
        feedback_url(conversation, turn),
        json={"rating": "down", "comment": "  Too vague.  ", "wrong_source": 1},
        headers=user.headers,
    )
    assert down.status_code == 200, down.text
    assert (down.json()["rating"], down.json()["comment"], down.json()["wrong_source"]) == (
        "down",
        "Too vague.",
        1,
    )
    assert down.json()["created_at"] == up.json()["created_at"]
    assert down.json()["updated_at"] > up.json()["updated_at"]

    read = await client.get(feedback_url(conversation, turn), headers=user.headers)
    assert read.json() == down.json()
    detail = (await client.get(f"/api/conversations/{conversation}", headers=user.headers)).json()
    assert detail["turns"][0]["feedback"] == down.json()
    # One rating per user and turn, stored with it.
    rows = await db.fetchval(
        "SELECT count(*) FROM feedback WHERE conversation_id = $1", uuid.UUID(conversation)
    )
    assert rows == 1

    topic = f"{app_env['KAFKA_TOPIC_PREFIX']}.feedback"

    def mine(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in messages if m["conversation_id"] == conversation]

    events = mine(
        await read_until(
            app_env["KAFKA_BOOTSTRAP_SERVERS"], topic, lambda found: len(mine(found)) >= 2
        )
    )
    assert [(e["rating"], e["replaced"]) for e in events] == [("up", False), ("down", True)]
    last = events[-1]
    assert (last["type"], last["turn"], last["comment"], last["wrong_source"]) == (
        "feedback",
        turn,
        "Too vague.",
        1,
    )
    assert (last["user_id"], last["tenant_id"]) == (user.id, user.tenant_id)
    assert last["question"] == "How long do I have for claims?" and last["answer"] == answer
    assert last["sources"][0]["filename"] == "handbook.md"
    assert "text" not in last["sources"][0]

    metrics = (await client.get("/metrics")).text
    assert (counted(metrics, "up"), counted(metrics, "down")) == (ups + 1, downs + 1)


async def test_refusals(client: httpx.AsyncClient) -> None:
    user = await ready_user(client)
    conversation, turn, _ = await ask(client, user, "When does the office open?")
    cases: list[tuple[str, Any, int]] = [
        (feedback_url(conversation, turn + 1), {"rating": "up"}, 404),
        (feedback_url(str(uuid.uuid4()), 1), {"rating": "up"}, 404),
        (feedback_url(conversation, turn), {"rating": "down", "wrong_source": 40}, 400),
        (feedback_url(conversation, turn), {"rating": "down", "wrong_source": 51}, 422),
        (feedback_url(conversation, turn), {"rating": "meh"}, 422),
        (feedback_url(conversation, turn), {"rating": "down", "comment": "x" * 2001}, 422),
        (feedback_url(conversation, turn), {"rating": "down", "comment": "a\x00b"}, 422),
        (feedback_url(conversation, 0), {"rating": "up"}, 422),
    ]
    for url, body, status in cases:
        response = await client.put(url, json=body, headers=user.headers)
        assert response.status_code == status, (url, body, response.text)
    longest = await client.put(
        feedback_url(conversation, turn),
        json={"rating": "down", "comment": "y" * 2000},
        headers=user.headers,
    )
    assert longest.status_code == 200, longest.text
    unrated = await client.get(feedback_url(str(uuid.uuid4()), 1), headers=user.headers)
    assert unrated.status_code == 404


async def test_admins_list_and_export_their_tenants_feedback(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    admin = await new_user(client, "boss")
    member = await member_of(client, db, admin.tenant_id, "rater")
    doc = await upload(client, member, "handbook.md", HANDBOOK)
    assert (await wait_for_status(client, member, doc))["status"] == "indexed"
    rated: list[tuple[str, int]] = []
    for question, rating in (
        ("When does the office open?", "up"),
        ('=HYPERLINK("http://x") How long for claims?', "down"),
        ("When does the office close?", "down"),
    ):
        conversation, turn, _ = await ask(client, member, question)
        body: dict[str, Any] = {"rating": rating}
        if rating == "down":
            body |= {"comment": "Wrong passage", "wrong_source": 1}
        put = await client.put(feedback_url(conversation, turn), json=body, headers=member.headers)
        assert put.status_code == 200, put.text
        rated.append((conversation, turn))
    # Another tenant's feedback never shows.
    stranger = await ready_user(client)
    other, other_turn, _ = await ask(client, stranger, "When does the office open?")
    await client.put(
        feedback_url(other, other_turn), json={"rating": "down"}, headers=stranger.headers
    )

    listed = await client.get("/api/admin/feedback", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    entries = listed.json()
    assert [(e["conversation_id"], e["turn"]) for e in entries] == rated[::-1]
    newest = entries[0]
    assert (newest["username"], newest["user_id"]) == (member.username, member.id)
    assert newest["question"] == "When does the office close?" and "7" in newest["answer"]
    assert newest["wrong_source_ref"]["filename"] == "handbook.md"
    assert "text" not in newest["wrong_source_ref"]
    downs = (
        await client.get("/api/admin/feedback", params={"rating": "down"}, headers=admin.headers)
    ).json()
    assert [e["rating"] for e in downs] == ["down", "down"]
    page = (
        await client.get(
            "/api/admin/feedback",
            params={"limit": 1, "before": entries[0]["seq"]},
            headers=admin.headers,
        )
    ).json()
    assert [e["seq"] for e in page] == [entries[1]["seq"]]

    as_json = await client.get(
        "/api/admin/feedback/export", params={"format": "json"}, headers=admin.headers
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-disposition"] == 'attachment; filename="feedback.json"'
    assert as_json.json() == entries
    as_csv = await client.get(
        "/api/admin/feedback/export", params={"format": "csv"}, headers=admin.headers
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(r["conversation_id"], int(r["turn"]), r["rating"]) for r in table] == [
        (e["conversation_id"], e["turn"], e["rating"]) for e in entries
    ]
    assert table[0]["wrong_source_file"] == "handbook.md"
    # A question that looks like a formula is exported as text.
    assert table[1]["question"].startswith("'=HYPERLINK")

    for who in (member, stranger):
        for path in ("/api/admin/feedback", "/api/admin/feedback/export"):
            refused = await client.get(path, headers=who.headers)
            if who is stranger:
                # An admin of another tenant: their own tenant's feedback only.
                assert refused.status_code == 200
                assert rated[0][0] not in refused.text
            else:
                assert refused.status_code == 403, refused.text

    # Deleting a conversation deletes its turns' feedback.
    gone = await client.delete(f"/api/conversations/{rated[0][0]}", headers=member.headers)
    assert gone.status_code == 204
    left = (await client.get("/api/admin/feedback", headers=admin.headers)).json()
    assert [(e["conversation_id"], e["turn"]) for e in left] == rated[:0:-1]


async def test_cli_rates_the_last_answer_and_admins_export(
    client: httpx.AsyncClient, gateway: Component, tmp_path: Path
) -> None:
    user: User = await ready_user(client)
    assert sign_in(tmp_path, gateway, user).returncode == 0
    asked = rag(tmp_path, "chat", "--json", "When does the office open?")
    conversation = json.loads(asked.stdout)["conversation_id"]
    assert json.loads(asked.stdout)["turn"] == 1
    rag(tmp_path, "chat", "--json", "--continue", "And when does it close?")
    down = rag(tmp_path, "feedback", "down", "--comment", "Missed it", "--wrong-source", "1")
    assert down.returncode == 0, down.stderr
    assert f"rated turn 2 of conversation {conversation}: down" in down.stdout
    first = rag(tmp_path, "feedback", "up", "--conversation", conversation, "--turn", "1")
    assert first.returncode == 0, first.stderr
    missing = rag(tmp_path, "feedback", "up", "--conversation", conversation, "--turn", "9")
    assert missing.returncode == 1 and "404" in missing.stderr

    listed = json.loads(rag(tmp_path, "feedback", "list", "--json", "--rating", "down").stdout)
    assert [(e["turn"], e["comment"]) for e in listed] == [(2, "Missed it")]
    out = tmp_path / "feedback.csv"
    exported = rag(tmp_path, "feedback", "export", "--format", "csv", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["turn"], r["rating"]) for r in rows] == [("1", "up"), ("2", "down")]

    # The questions rated down, as lines to label for the evaluation set.
    review = tmp_path / "review.jsonl"
    listed_for_review = rag(tmp_path, "eval", "--review-list", str(review))
    assert listed_for_review.returncode == 0, listed_for_review.stderr
    assert "1 questions rated down (1 ratings)" in listed_for_review.stdout
    [line] = [json.loads(text) for text in review.read_text().splitlines()]
    assert line["question"] == "And when does it close?" and "gold" not in line
    assert [(r["comment"], r["turn"]) for r in line["review"]] == [("Missed it", 2)]
    assert line["review"][0]["wrong_source"]["n"] == 1
    # Unlabelled, it cannot join a set: the loader asks for its gold.
    with pytest.raises(DatasetError, match="'gold' must be a list"):
        _question(line)
