"""Groups are attacked like tenants: a document shared with a group reaches
its members and nobody else, whatever the attacker names, makes or claims.

The world's victim has a group (GROUP_NAME, only the victim in it) and a
document shared with it (tagged GROUP_TAG). The insider (same tenant, not
in the group) and the outsider (another tenant's admin) try: a group of the
very same name of their own, the victim's group id on every group route and
in shares, filters on the document's labels, and, with single sign-on, a
groups claim naming the victim's group by name or by id."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.adversarial.conftest import (
    GROUP_CODE,
    GROUP_NAME,
    GROUP_NUMBER,
    GROUP_TAG,
    GROUPED,
    World,
    fresh_attacker,
)
from tests.support.api import User, member_of, wait_for_status
from tests.support.oidc_provider import API_AUDIENCE, OidcProvider
from tests.support.processes import Component

QUESTION = f"What is the strongroom key number for project {GROUP_CODE}?"
MODES = [{"retrieval": mode, "reranking": "none"} for mode in ("hybrid", "dense", "lexical")]
NOTHING = {"tags_any": [f"no-such-tag-{uuid.uuid4().hex[:6]}"]}


async def reach(client: httpx.AsyncClient, actor: User, doc_id: str, **extra: Any) -> list[str]:
    """Every door through which ``actor`` reached the document (empty: none),
    and an assertion that the secret shows nowhere else."""
    reached: list[str] = []
    if (await client.get(f"/api/documents/{doc_id}", headers=actor.headers)).status_code == 200:
        reached.append("get")
    listed = await client.get("/api/documents", headers=actor.headers)
    if doc_id in listed.text:
        reached.append("list")
    for mode in MODES:
        body = {"query": QUESTION, **mode, **extra}
        found = await client.post("/api/search", headers=actor.headers, json=body, timeout=60)
        assert found.status_code == 200, found.text
        if any(p["document_id"] == doc_id for p in found.json()["passages"]):
            reached.append(f"search {mode['retrieval']}")
    chat = await client.post(
        "/api/chat", headers=actor.headers, json={"message": QUESTION, **extra}, timeout=60
    )
    assert chat.status_code == 200, chat.text
    if any(s["document_id"] == doc_id for s in chat.json()["sources"]):
        reached.append("chat")
    completion = await client.post(
        "/v1/chat/completions",
        headers=actor.headers,
        json={"model": "ragstream", "messages": [{"role": "user", "content": QUESTION}], **extra},
        timeout=60,
    )
    assert completion.status_code == 200, completion.text
    if any(s["document_id"] == doc_id for s in completion.json()["sources"]):
        reached.append("v1")
    if not reached:
        for text in (listed.text, chat.text, completion.text):
            assert GROUP_CODE not in text and GROUP_NUMBER not in text
    return reached


async def test_the_control_the_victim_and_a_member_added_to_the_group_reach_it(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool
) -> None:
    """So that reaching nothing below means the filter held."""
    assert len(await reach(client, world.victim, world.group_document_id)) == 7
    member = await member_of(client, db, world.victim.tenant_id, "group-member")
    assert await reach(client, member, world.group_document_id) == []
    path = f"/api/admin/groups/{world.group_id}/members/{member.id}"
    assert (await client.put(path, headers=world.victim.headers)).status_code == 204
    assert len(await reach(client, member, world.group_document_id)) == 7
    assert (await client.delete(path, headers=world.victim.headers)).status_code == 204
    assert await reach(client, member, world.group_document_id) == []


@pytest.mark.parametrize("attacker", ["outsider", "insider"])
async def test_a_group_of_the_same_name_of_the_attackers_grants_nothing(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool, attacker: str
) -> None:
    """The outsider makes GROUP_NAME in their tenant and joins it; the
    insider cannot make groups (403) nor join the victim's."""
    actor = await fresh_attacker(client, db, world, attacker)
    made = await client.post("/api/admin/groups", headers=actor.headers, json={"name": GROUP_NAME})
    if attacker == "outsider":
        assert made.status_code == 201, made.text
        own = made.json()["id"]
        joined = await client.put(
            f"/api/admin/groups/{own}/members/{actor.id}", headers=actor.headers
        )
        assert joined.status_code == 204
        assert [
            g["name"] for g in (await client.get("/api/groups", headers=actor.headers)).json()
        ] == [GROUP_NAME]
    else:
        assert made.status_code == 403, made.text
        joined = await client.put(
            f"/api/admin/groups/{world.group_id}/members/{actor.id}", headers=actor.headers
        )
        assert joined.status_code == 403
    assert await reach(client, actor, world.group_document_id) == []
    assert (
        await reach(client, actor, world.group_document_id, document_ids=[world.group_document_id])
        == []
    )


async def test_another_tenants_group_or_user_id_is_404_on_every_group_route(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool
) -> None:
    outsider = await fresh_attacker(client, db, world, "outsider")
    own = await client.post(
        "/api/admin/groups", headers=outsider.headers, json={"name": f"own-{uuid.uuid4().hex[:6]}"}
    )
    own_id = own.json()["id"]
    victim_group, victim_user = world.group_id, world.victim.id
    probes = [
        ("GET", f"/api/admin/groups/{victim_group}/members"),
        ("DELETE", f"/api/admin/groups/{victim_group}"),
        ("PUT", f"/api/admin/groups/{victim_group}/members/{outsider.id}"),
        ("PUT", f"/api/admin/groups/{victim_group}/members/{victim_user}"),
        ("DELETE", f"/api/admin/groups/{victim_group}/members/{victim_user}"),
        # Their own group with the victim as the member: the user is not theirs.
        ("PUT", f"/api/admin/groups/{own_id}/members/{victim_user}"),
        ("DELETE", f"/api/admin/groups/{own_id}/members/{victim_user}"),
    ]
    for method, path in probes:
        response = await client.request(method, path, headers=outsider.headers)
        unknown = await client.request(
            method, path.replace(victim_group, str(uuid.uuid4())), headers=outsider.headers
        )
        assert response.status_code == 404 == unknown.status_code, (method, path, response.text)
    listed = await client.get("/api/admin/groups", headers=outsider.headers)
    assert GROUP_NAME not in listed.text and victim_group not in listed.text
    # Nothing of the victim's changed.
    members = await db.fetch(
        "SELECT user_id FROM group_members WHERE group_id = $1", uuid.UUID(victim_group)
    )
    assert [str(r["user_id"]) for r in members] == [victim_user]
    stranger = await db.fetchval(
        "SELECT count(*) FROM group_members WHERE user_id = $1", uuid.UUID(victim_user)
    )
    assert stranger == 1


@pytest.mark.parametrize("attacker", ["outsider", "insider"])
async def test_a_share_cannot_name_a_group_the_sharer_may_not_use(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool, attacker: str
) -> None:
    """The outsider's tenant has no GROUP_NAME (400), nor a group named by the
    victim's group id (400); the insider is not in the victim's group (403).
    Nothing is stored, and the victim's group gains no document."""
    actor = await fresh_attacker(client, db, world, attacker)
    expected = 400 if attacker == "outsider" else 403
    for name, status in ((GROUP_NAME, expected), (world.group_id, 400)):
        upload = await client.post(
            "/api/documents",
            headers=actor.headers,
            files={"file": ("planted.txt", b"Planted text.", "text/plain")},
            data={"groups": name},
        )
        assert upload.status_code == status, (name, upload.text)
    listed = (await client.get("/api/documents", headers=actor.headers)).json()
    assert [d for d in listed if d["mine"]] == []  # (the insider sees the tenant's shared one)
    own = await client.post(
        "/api/documents",
        headers=actor.headers,
        files={"file": ("own.txt", b"Own text.", "text/plain")},
    )
    own_id = own.json()["id"]
    for name, status in ((GROUP_NAME, expected), (world.group_id, 400)):
        patch = await client.patch(
            f"/api/documents/{own_id}", headers=actor.headers, json={"groups": [name]}
        )
        assert patch.status_code == status, (name, patch.text)
    assert (await client.get(f"/api/documents/{own_id}", headers=actor.headers)).json()[
        "visibility"
    ] == "private"
    linked = await db.fetchval(
        "SELECT count(*) FROM document_groups WHERE group_id = $1", uuid.UUID(world.group_id)
    )
    assert linked == 1  # the victim's own document only


@pytest.mark.parametrize("attacker", ["outsider", "insider"])
async def test_filters_on_a_group_documents_labels_answer_as_no_match(
    client: httpx.AsyncClient, world: World, db: asyncpg.Pool, attacker: str
) -> None:
    actor = await fresh_attacker(client, db, world, attacker)
    probes: list[dict[str, Any]] = [
        {"tags_any": [GROUP_TAG]},
        {"meta": {"vault": "strongroom"}},
        {"filename": "strongroom.txt"},
    ]
    for probe in probes:
        for mode in MODES:
            body = {"query": QUESTION, **mode}
            answers = []
            for filters in (probe, NOTHING):
                response = await client.post(
                    "/api/search", headers=actor.headers, json={**body, "filters": filters}
                )
                answers.append((response.status_code, response.json()))
            assert answers[0] == answers[1] == (200, {"query": QUESTION, "passages": []}), probe
        assert await reach(client, actor, world.group_document_id, filters=probe) == []
    # The control: the victim's filter finds it.
    found = await client.post(
        "/api/search",
        headers=world.victim.headers,
        json={"query": QUESTION, "filters": {"tags_any": [GROUP_TAG]}},
    )
    assert {p["document_id"] for p in found.json()["passages"]} == {world.group_document_id}
    assert GROUPED.split(" is ")[0] in found.text


def _claimed(provider: OidcProvider, login: str, tenant: str, groups: list[str]) -> str:
    now = int(time.time())
    return provider.sign(
        {
            "sub": login,
            "aud": API_AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "tenant": provider.name(tenant),
            "groups": groups,
            "preferred_username": provider.name(login),
        }
    )


async def test_a_claim_naming_another_tenants_group_grants_nothing(
    client: httpx.AsyncClient,
    world: World,
    oidc_client: httpx.AsyncClient,
    oidc_provider: OidcProvider,
    oidc_gateway: Component,
    db: asyncpg.Pool,
) -> None:
    """carol (tenant globex at the provider) presents tokens whose groups
    claim names the victim's group, by name and by id: she gets groups of
    those names in globex, and nothing of the victim's."""
    token = _claimed(oidc_provider, "carol", "globex", [GROUP_NAME, world.group_id])
    mine = await oidc_client.get("/api/groups", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200, mine.text
    assert {g["name"] for g in mine.json()} == {GROUP_NAME, world.group_id}
    assert world.group_id not in {g["id"] for g in mine.json()}
    me = (
        await oidc_client.get("/api/auth/verify", headers={"Authorization": f"Bearer {token}"})
    ).json()
    assert me["tenant_id"] != world.victim.tenant_id
    carol = User("carol", token, me["id"], me["tenant_id"])
    assert await reach(oidc_client, carol, world.group_document_id) == []
    members = await db.fetch(
        "SELECT user_id FROM group_members WHERE group_id = $1", uuid.UUID(world.group_id)
    )
    assert [str(r["user_id"]) for r in members] == [world.victim.id]


async def test_documents_shared_with_a_group_survive_the_attacks(
    client: httpx.AsyncClient, world: World
) -> None:
    doc = await wait_for_status(client, world.victim, world.group_document_id)
    assert (doc["visibility"], doc["groups"]) == ("groups", [GROUP_NAME])
