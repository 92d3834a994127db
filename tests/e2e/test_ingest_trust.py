"""The ingest worker trusts the document row, not the message: anyone who can
publish to the request topic can write a message, only an authenticated
upload writes a row."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import User, new_user, upload, wait_for_status
from tests.support.kafka import document_row, ingest_request_for, publish_ingest, read_until

SECRET = b"# Vault\n\nThe vault code of the Lisbon office is 7731, changed every March.\n"


def _topic(app_env: dict[str, str], name: str) -> str:
    return f"{app_env['KAFKA_TOPIC_PREFIX']}.{name}"


async def _sources(client: httpx.AsyncClient, user: User, message: str) -> list[dict[str, Any]]:
    response = await client.post("/api/chat", headers=user.headers, json={"message": message})
    assert response.status_code == 200, response.text
    sources: list[dict[str, Any]] = response.json()["sources"]
    return sources


async def test_a_forged_owner_in_the_message_changes_nothing(
    app_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    victim, attacker = await new_user(client, "victim"), await new_user(client, "attacker")
    doc_id = await upload(client, victim, "vault.md", SECRET)
    assert (await wait_for_status(client, victim, doc_id))["status"] == "indexed"
    row = await document_row(app_env["DATABASE_URL"], doc_id)
    forged = ingest_request_for(
        row,
        "forged",
        tenant_id=uuid.UUID(attacker.tenant_id),
        user_id=uuid.UUID(attacker.id),
        filename="mine-now.md",
    )
    await publish_ingest(app_env, forged)
    events = await read_until(
        app_env["KAFKA_BOOTSTRAP_SERVERS"],
        _topic(app_env, "ingest.events"),
        lambda msgs: any(
            m["correlation_id"] == forged.correlation_id and m["status"] == "indexed" for m in msgs
        ),
    )
    statuses = [m for m in events if m["correlation_id"] == forged.correlation_id]
    assert {(m["tenant_id"], m["user_id"]) for m in statuses} == {(victim.tenant_id, victim.id)}

    assert await _sources(client, attacker, "What is the vault code of the Lisbon office?") == []
    [source, *_] = await _sources(client, victim, "What is the vault code of the Lisbon office?")
    assert (source["document_id"], source["filename"]) == (doc_id, "vault.md")


async def test_a_stored_file_that_no_longer_matches_its_checksum_fails(
    app_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    user = await new_user(client)
    doc_id = await upload(client, user, "notes.md", b"# Notes\n\nThe original text.\n")
    assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
    row = await document_row(app_env["DATABASE_URL"], doc_id)
    blob = Path(app_env["BLOB_DIR"]) / row["blob_key"]
    await asyncio.to_thread(blob.write_bytes, b"# Notes\n\nSwapped behind our back.\n")
    await publish_ingest(app_env, ingest_request_for(row, "replay"))
    async with asyncio.timeout(30):
        while True:
            doc = await wait_for_status(client, user, doc_id)
            if doc["status"] == "failed":
                break
            await asyncio.sleep(0.2)
    assert "checksum" in doc["error"]
