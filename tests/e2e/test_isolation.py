"""One tenant never sees another's documents, chunks, answers or history."""

from __future__ import annotations

import httpx

from tests.support.api import answer_text, new_user, stream_chat, upload, wait_for_status

SECRET = b"The acquisition code name is BLUEHERON and the price is 42 million."


async def test_a_user_never_sees_another_users_data(client: httpx.AsyncClient) -> None:
    owner = await new_user(client, "owner")
    other = await new_user(client, "other")
    doc_id = await upload(client, owner, "secret.txt", SECRET)
    assert (await wait_for_status(client, owner, doc_id))["status"] == "indexed"
    _, owner_events = await stream_chat(client, owner, {"message": "acquisition code name"})
    assert "BLUEHERON" in answer_text(owner_events)
    conversation = owner_events[-1].data["conversation_id"]

    assert (await client.get("/api/documents", headers=other.headers)).json() == []
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/api/documents/{doc_id}", headers=other.headers)
        assert response.status_code == 404, (method, response.text)

    _, events = await stream_chat(client, other, {"message": "acquisition code name BLUEHERON"})
    [sources] = [e.data for e in events if e.event == "sources"]
    assert all(s["document_id"] != doc_id for s in sources)
    assert "BLUEHERON" not in answer_text(events)
    assert "42 million" not in answer_text(events)

    history = await client.get(
        "/api/chat/history", params={"conversation_id": conversation}, headers=other.headers
    )
    assert history.json() == []
    assert (await client.get(f"/api/documents/{doc_id}", headers=owner.headers)).status_code == 200
