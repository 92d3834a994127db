"""Conversations are their user's alone: another user (of the same tenant or
another) who has the victim's conversation id can neither read, rename nor
delete it (404, as for an id that does not exist), nor see it listed, nor
get into it by continuing it on chat: that files the attacker's question
under a conversation of the attacker's own, with none of the victim's
turns in its memory, its list, its title or its answer."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.adversarial.conftest import SECRET, SECRET_CODE, SECRET_NUMBER, World, fresh_attacker
from tests.support.api import stream_chat


async def _victims(client: httpx.AsyncClient, world: World) -> dict[str, object]:
    response = await client.get(
        f"/api/conversations/{world.conversation_id}", headers=world.victim.headers
    )
    assert response.status_code == 200, response.text
    detail: dict[str, object] = response.json()
    return detail


@pytest.mark.parametrize("attacker", ["insider", "outsider"])
async def test_another_users_conversation_id_is_not_found(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool, attacker: str
) -> None:
    actor = await fresh_attacker(client, db, world, attacker)
    before = await _victims(client, world)
    url = f"/api/conversations/{world.conversation_id}"
    for method, body in (("GET", None), ("PATCH", {"title": "pwned"}), ("DELETE", None)):
        response = await client.request(method, url, json=body, headers=actor.headers)
        assert response.status_code == 404, f"{method}: {response.status_code} {response.text}"
        assert response.json() == {"detail": "conversation not found"}
    listed = await client.get("/api/conversations", headers=actor.headers)
    assert listed.status_code == 200
    assert world.conversation_id not in listed.text and SECRET_CODE not in listed.text
    assert await _victims(client, world) == before


@pytest.mark.parametrize("attacker", ["insider", "outsider"])
async def test_continuing_another_users_conversation_starts_ones_own(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool, attacker: str
) -> None:
    actor = await fresh_attacker(client, db, world, attacker)
    before = await _victims(client, world)
    question = "What did I ask before, and what was the combination?"
    response, events = await stream_chat(
        client, actor, {"message": question, "conversation_id": world.conversation_id}
    )
    assert response.status_code == 200, response.text
    done = events[-1]
    assert done.event == "done", events
    # The attacker's first turn, in a conversation of the attacker's.
    assert (str(done.data["conversation_id"]), done.data["turn"]) == (world.conversation_id, 1)
    streamed = "".join(str(e.data) for e in events)
    assert SECRET_NUMBER not in streamed and SECRET_CODE not in streamed
    own = await client.get(f"/api/conversations/{world.conversation_id}", headers=actor.headers)
    assert own.status_code == 200, own.text
    assert own.json()["title"] == question
    assert [t["question"] for t in own.json()["turns"]] == [question]
    assert SECRET not in own.text
    # The victim's conversation: untouched, one turn, their own question.
    after = await _victims(client, world)
    assert after == before
    assert [t["question"] for t in after["turns"]] == [SECRET]  # type: ignore[union-attr]
    # Deleting theirs leaves the victim's.
    gone = await client.delete(f"/api/conversations/{world.conversation_id}", headers=actor.headers)
    assert gone.status_code == 204
    assert await _victims(client, world) == before
