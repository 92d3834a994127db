"""The attacker's world: a victim tenant with a private document, a chat and
(where the API has them) an API key; an insider (a member of the victim's
tenant) and an outsider (the admin of a tenant of their own)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.api import User, member_of, new_user, stream_chat, upload, wait_for_status
from tests.support.processes import Component

# Unique per run, so finding it anywhere proves a leak.
SECRET_CODE = f"NIGHTJAR-{uuid.uuid4().hex[:8]}"
SECRET_NUMBER = "7319-4420-8851"
SECRET = f"The vault combination for project {SECRET_CODE} is {SECRET_NUMBER}."
# In a document the victim shares with their tenant: the insider may read it.
SHARED_CODE = f"KESTREL-{uuid.uuid4().hex[:8]}"
SHARED = f"The staff canteen wifi password for {SHARED_CODE} is tern-harbour-5512."
# In a document the victim shares with a group of theirs (only the victim is in it).
GROUP_NAME = f"vault-keepers-{uuid.uuid4().hex[:6]}"
GROUP_CODE = f"GANNET-{uuid.uuid4().hex[:8]}"
GROUP_NUMBER = "5120-8836-4471"
GROUP_TAG = f"gannet-{uuid.uuid4().hex[:6]}"
GROUPED = f"The strongroom key for project {GROUP_CODE} is numbered {GROUP_NUMBER}."


@dataclass
class World:
    victim: User
    insider: User  # same tenant as the victim, a member
    outsider: User  # another tenant, its admin
    document_id: str  # private
    shared_document_id: str  # shared with the victim's tenant
    conversation_id: str
    group_id: str  # the victim's group, GROUP_NAME, whose only member is the victim
    group_document_id: str  # shared with that group, tagged GROUP_TAG, meta vault=strongroom
    # Every id that belongs to the victim's side, by kind.
    victim_ids: dict[str, str] = field(default_factory=dict)


async def _victim_key_id(client: httpx.AsyncClient, victim: User) -> str | None:
    """An API key of the victim's, if the API has a route that makes one."""
    spec = (await client.get("/openapi.json")).json()
    for path, ops in spec["paths"].items():
        if "{" not in path and path.rstrip("/").endswith("keys") and "post" in ops:
            made = await client.post(path, headers=victim.headers, json={"name": "victim-key"})
            if made.is_success and isinstance(made.json(), dict) and "id" in made.json():
                return str(made.json()["id"])
    return None


async def _victim_source(client: httpx.AsyncClient, victim: User, app_env: dict[str, str]) -> str:
    """A folder-sync source of the victim's (an admin of their tenant)."""
    folder = Path(json.loads(app_env["SYNC_ROOTS"])[0]) / f"victim-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    body = {"name": folder.name, "path": str(folder), "interval_seconds": 3600}
    made = await client.post("/api/sources", headers=victim.headers, json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


@pytest.fixture(scope="session")
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def world(gateway: Component, db: asyncpg.Pool, app_env: dict[str, str]) -> World:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as client:
        victim = await new_user(client, "victim")
        insider = await member_of(client, db, victim.tenant_id, "insider")
        outsider = await new_user(client, "outsider")
        doc_id = await upload(client, victim, "vault.txt", SECRET.encode())
        assert (await wait_for_status(client, victim, doc_id))["status"] == "indexed"
        shared_id = await upload(client, victim, "canteen.txt", SHARED.encode())
        assert (await wait_for_status(client, victim, shared_id))["status"] == "indexed"
        share = await client.patch(
            f"/api/documents/{shared_id}", headers=victim.headers, json={"visibility": "tenant"}
        )
        assert share.status_code == 200, share.text
        response, events = await stream_chat(client, victim, {"message": SECRET})
        assert response.status_code == 200, response.text
        conversation = str(events[-1].data["conversation_id"])
        group_id, group_doc = await _victims_group(client, victim)
        ids = {
            "document": doc_id,
            "shared_document": shared_id,
            "conversation": conversation,
            "user": victim.id,
            "tenant": victim.tenant_id,
            "group": group_id,
            "group_document": group_doc,
        }
        ids["source"] = await _victim_source(client, victim, app_env)
        key_id = await _victim_key_id(client, victim)
        if key_id is not None:
            ids["api_key"] = key_id
    return World(
        victim, insider, outsider, doc_id, shared_id, conversation, group_id, group_doc, ids
    )


async def _victims_group(client: httpx.AsyncClient, victim: User) -> tuple[str, str]:
    """The victim's group (the victim its only member) and a document shared with it."""
    made = await client.post("/api/admin/groups", headers=victim.headers, json={"name": GROUP_NAME})
    assert made.status_code == 201, made.text
    group_id = str(made.json()["id"])
    joined = await client.put(
        f"/api/admin/groups/{group_id}/members/{victim.id}", headers=victim.headers
    )
    assert joined.status_code == 204, joined.text
    uploaded = await client.post(
        "/api/documents",
        headers=victim.headers,
        files={"file": ("strongroom.txt", GROUPED.encode(), "text/plain")},
        data={"groups": GROUP_NAME, "tags": GROUP_TAG, "meta": "vault=strongroom"},
    )
    assert uploaded.status_code == 202, uploaded.text
    doc_id = str(uploaded.json()["id"])
    assert (await wait_for_status(client, victim, doc_id))["status"] == "indexed"
    return group_id, doc_id


async def fresh_attacker(
    client: httpx.AsyncClient, db: asyncpg.Pool, world: World, attacker: str
) -> User:
    """A new insider (a member of the victim's tenant) or outsider (another
    tenant's admin) who has sent nothing yet. Tests that read what an id
    resolves to need one: continuing someone's conversation id on chat files
    a conversation of one's own under that id (test_chat_leaks does so with
    the world's attackers), and a later read of that id is then rightly 200."""
    if attacker == "insider":
        return await member_of(client, db, world.victim.tenant_id, "fresh-insider")
    return await new_user(client, "fresh-outsider")


async def tenant_documents(pool: asyncpg.Pool, tenant_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM documents WHERE tenant_id = $1", uuid.UUID(tenant_id)
    )
    return count


def tenant_blobs(app_env: dict[str, str], tenant_id: str) -> list[Path]:
    folder = Path(app_env["BLOB_DIR"]) / tenant_id
    return sorted(folder.rglob("*")) if folder.exists() else []


def all_files(root: Path) -> set[Path]:
    return set(root.rglob("*")) if root.exists() else set()


def jsonable(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
