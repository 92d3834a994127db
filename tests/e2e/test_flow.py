"""The main flow, end to end over HTTP: upload, index, ask, get a cited answer."""

from __future__ import annotations

import uuid

import httpx

from tests.support.api import answer_text, new_user, stream_chat, upload, wait_for_status

POLICY = b"""# Travel policy

Employees must submit travel expense claims within 30 days of returning.
Meals are reimbursed up to 45 euros per day. Hotel rooms are booked by the travel desk.

## Equipment

Every engineer receives a laptop on the first day. Monitors are ordered through the IT portal.
"""


async def test_upload_index_and_streamed_answer_citing_the_document(
    client: httpx.AsyncClient,
) -> None:
    user = await new_user(client)
    doc_id = await upload(client, user, "travel-policy.md", POLICY)
    doc = await wait_for_status(client, user, doc_id)
    assert doc["status"] == "indexed", doc
    assert doc["chunks"] >= 1
    assert doc["filename"] == "travel-policy.md"

    conversation = str(uuid.uuid4())
    response, events = await stream_chat(
        client,
        user,
        {
            "message": "How many days do I have to submit travel expense claims?",
            "conversation_id": conversation,
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [e.event for e in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert not {"error", "timeout"} & set(kinds)
    [sources] = [e.data for e in events if e.event == "sources"]
    assert sources[0]["document_id"] == doc_id
    assert sources[0]["filename"] == "travel-policy.md"
    assert set(sources[0]) == {
        "n",
        "document_id",
        "filename",
        "chunk_index",
        "score",
        "snippet",
        "text",
        "page",
        "section",
    }
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert sources[0]["section"] == "Travel policy"
    answer = answer_text(events)
    assert "within 30 days" in answer
    assert "[1]" in answer
    seqs = [e.data["seq"] for e in events if isinstance(e.data, dict)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[-1].data["conversation_id"] == conversation
    assert 1 in events[-1].data["cited"]

    history = await client.get(
        "/api/chat/history", params={"conversation_id": conversation}, headers=user.headers
    )
    assert history.status_code == 200
    turns = history.json()
    assert [t["role"] for t in turns] == ["user", "assistant"]
    assert turns[0]["content"].startswith("How many days")
    assert turns[1]["content"] == answer
    assert turns[1]["sources"][0]["document_id"] == doc_id


async def test_whole_answer_as_json_and_listing(client: httpx.AsyncClient) -> None:
    user = await new_user(client)
    doc_id = await upload(client, user, "equipment.txt", POLICY)
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"

    response = await client.post(
        "/api/chat", headers=user.headers, json={"message": "Who books hotel rooms?"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "travel desk" in body["answer"]
    assert body["sources"][0]["document_id"] == doc_id
    uuid.UUID(body["conversation_id"])

    listed = await client.get("/api/documents", headers=user.headers)
    assert [d["id"] for d in listed.json()] == [doc_id]


async def test_delete_removes_the_document_and_its_chunks(client: httpx.AsyncClient) -> None:
    user = await new_user(client)
    doc_id = await upload(client, user, "policy.md", POLICY)
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"

    deleted = await client.delete(f"/api/documents/{doc_id}", headers=user.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/documents/{doc_id}", headers=user.headers)).status_code == 404
    again = await client.delete(f"/api/documents/{doc_id}", headers=user.headers)
    assert again.status_code == 404

    _, events = await stream_chat(client, user, {"message": "travel expense claims"})
    [sources] = [e.data for e in events if e.event == "sources"]
    assert sources == []
    assert events[-1].event == "done"


async def test_unparseable_document_fails_with_a_reason(client: httpx.AsyncClient) -> None:
    user = await new_user(client)
    doc_id = await upload(client, user, "latin1.txt", "café crème".encode("latin-1"))
    doc = await wait_for_status(client, user, doc_id)
    assert doc["status"] == "failed"
    assert "not UTF-8" in doc["error"]
