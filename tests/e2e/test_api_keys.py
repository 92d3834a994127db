"""API keys against a real gateway: shown once, stored hashed, accepted as a
Bearer credential for uploads and chat, revocable, private to their owner,
and never written to the logs."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg
import httpx

from tests.support.api import User, answer_text, new_user, stream_chat, upload, wait_for_status
from tests.support.processes import Component

FACT = b"The heron project's parser is written in Rust by the Lisbon office."


async def _create(client: httpx.AsyncClient, user: User, name: str = "ci") -> dict[str, Any]:
    response = await client.post("/api/keys", headers=user.headers, json={"name": name})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _as(user: User, key: str) -> User:
    """The same user, calling with the API key instead of a token."""
    return User(user.username, key, user.id)


async def _sql(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_a_key_uploads_and_chats_as_its_user(
    client: httpx.AsyncClient, app_env: dict[str, str], gateway: Component
) -> None:
    user = await new_user(client, "keys")
    created = await _create(client, user)
    key = created["key"]
    assert key.startswith("rsk_") and len(key) > 40
    assert created["prefix"] == key[:12] and created["name"] == "ci"
    service = _as(user, key)

    verified = await client.get("/api/auth/verify", headers=service.headers)
    assert verified.status_code == 200 and verified.json()["id"] == user.id
    doc_id = await upload(client, service, "heron.txt", FACT)
    assert (await wait_for_status(client, service, doc_id))["status"] == "indexed"
    # The document is the user's: their token sees it too.
    assert (await client.get(f"/api/documents/{doc_id}", headers=user.headers)).status_code == 200
    response, events = await stream_chat(
        client, service, {"message": "Which language is the heron parser written in?"}
    )
    assert response.status_code == 200, response.text
    assert "Rust" in answer_text(events)

    [row] = await _sql(
        app_env["DATABASE_URL"],
        "SELECT key_hash, last_used_at FROM api_keys WHERE id = $1",
        created["id"],
    )
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["last_used_at"] is not None
    assert key not in gateway.log()
    assert key[12:] not in gateway.log()


async def test_listing_never_shows_the_key(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "keys")
    created = await _create(client, user, "nightly")
    listed = await client.get("/api/keys", headers=user.headers)
    assert listed.status_code == 200
    [entry] = listed.json()
    assert entry["id"] == created["id"] and entry["prefix"] == created["prefix"]
    assert "key" not in entry and "key_hash" not in entry
    assert created["key"] not in listed.text
    assert hashlib.sha256(created["key"].encode()).hexdigest() not in listed.text


async def test_a_revoked_key_is_refused(client: httpx.AsyncClient, app_env: dict[str, str]) -> None:
    user = await new_user(client, "keys")
    created = await _create(client, user)
    service = _as(user, created["key"])
    assert (await client.get("/api/documents", headers=service.headers)).status_code == 200
    revoked = await client.delete(f"/api/keys/{created['id']}", headers=user.headers)
    assert revoked.status_code == 204
    assert (await client.get("/api/documents", headers=service.headers)).status_code == 401
    [entry] = (await client.get("/api/keys", headers=user.headers)).json()
    assert entry["revoked_at"] is not None
    actions = await _sql(
        app_env["DATABASE_URL"],
        "SELECT action FROM audit_log WHERE target = $1 ORDER BY id",
        created["id"],
    )
    assert [row["action"] for row in actions] == ["key.created", "key.revoked"]


async def test_keys_are_private_to_their_owner(client: httpx.AsyncClient) -> None:
    owner, other = await new_user(client, "keys"), await new_user(client, "keys")
    created = await _create(client, owner)
    stolen = await client.delete(f"/api/keys/{created['id']}", headers=other.headers)
    assert stolen.status_code == 404
    assert (await client.get("/api/keys", headers=other.headers)).json() == []
    service = _as(owner, created["key"])
    assert (await client.get("/api/auth/verify", headers=service.headers)).status_code == 200


async def test_a_key_cannot_manage_keys(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "keys")
    created = await _create(client, user)
    service = _as(user, created["key"])
    minted = await client.post("/api/keys", headers=service.headers, json={"name": "more"})
    assert minted.status_code == 403
    revoked = await client.delete(f"/api/keys/{created['id']}", headers=service.headers)
    assert revoked.status_code == 403


async def test_unknown_keys_and_disabled_users_are_refused(
    client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(client, "keys")
    service = _as(user, (await _create(client, user))["key"])
    forged = _as(user, "rsk_" + "A" * 43)
    assert (await client.get("/api/auth/verify", headers=forged.headers)).status_code == 401
    assert (await client.get("/api/auth/verify", headers=service.headers)).status_code == 200
    await _sql(
        app_env["DATABASE_URL"], "UPDATE users SET disabled_at = now() WHERE id = $1", user.id
    )
    assert (await client.get("/api/auth/verify", headers=service.headers)).status_code == 401


async def test_bad_key_requests_are_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    user = await new_user(client, "keys")
    for name in ["", "a\x00b", "x" * 101]:
        response = await client.post("/api/keys", headers=user.headers, json={"name": name})
        assert response.status_code == 422, (name, response.text)
    assert (await client.delete("/api/keys/not-a-uuid", headers=user.headers)).status_code == 422
    assert (await client.get("/api/keys")).status_code == 401
    assert (await client.get("/api/keys", headers=user.headers)).json() == []
