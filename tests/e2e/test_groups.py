"""Groups on the real stack (issue 23 item 2): a document shared with a
group is read, listed, searched (dense and lexical), cited in chat and in
/v1, and announced on the document events stream, for the group's members
and nobody else; removing a member, deleting the group or unsharing takes
effect at once, a cached answer included; the groups claim of a real
OpenID provider's tokens makes and ends memberships at each sign-in.

Tenant A: its admin (the owner of the documents), m1 and m2 (members of the
group ``finance``) and out (a member of A in no group); tenant B: b1, whose
own ``finance`` group must grant nothing in A."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.test_cli_client import one_line, rag, sign_in
from tests.support import api
from tests.support.api import User, new_user, wait_for_status
from tests.support.oidc_provider import API_AUDIENCE, OidcProvider
from tests.support.processes import Component, side_stack

MODES = ("dense", "lexical")


@pytest.fixture(scope="module")
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


@dataclass(frozen=True)
class Secret:
    code: str
    number: str

    @classmethod
    def new(cls) -> Secret:
        digits = f"{uuid.uuid4().int % 10**12:012d}"
        return cls(f"HERON-{uuid.uuid4().hex[:8].upper()}", "-".join((digits[:4], digits[4:8])))

    @property
    def text(self) -> bytes:
        return f"The budget code for project {self.code} is {self.number}.".encode()

    @property
    def question(self) -> str:
        return f"What is the budget code for project {self.code}? {self.number}"


@dataclass
class Org:
    admin: User
    m1: User
    m2: User
    out: User
    b1: User
    group_id: str
    group: str


async def make_group(client: httpx.AsyncClient, admin: User, name: str) -> str:
    made = await client.post("/api/admin/groups", headers=admin.headers, json={"name": name})
    assert made.status_code == 201, made.text
    assert made.json()["origin"] == "local" and made.json()["members"] == 0
    return str(made.json()["id"])


async def set_member(
    client: httpx.AsyncClient, admin: User, group_id: str, user: User, *, member: bool
) -> None:
    path = f"/api/admin/groups/{group_id}/members/{user.id}"
    response = await client.request("PUT" if member else "DELETE", path, headers=admin.headers)
    assert response.status_code == 204, response.text


@pytest.fixture
async def org(client: httpx.AsyncClient, db: asyncpg.Pool) -> Org:
    admin = await new_user(client, "gadmin")
    m1, m2, out = [await api.member_of(client, db, admin.tenant_id, p) for p in ("m1", "m2", "out")]
    b1 = await new_user(client, "b1")
    name = f"finance-{uuid.uuid4().hex[:6]}"
    group_id = await make_group(client, admin, name)
    for member in (m1, m2):
        await set_member(client, admin, group_id, member, member=True)
    # B has a group of the very same name, with b1 in it.
    b_group = await make_group(client, b1, name)
    await set_member(client, b1, b_group, b1, member=True)
    return Org(admin, m1, m2, out, b1, group_id, name)


async def upload(
    client: httpx.AsyncClient, user: User, secret: Secret, **form: Any
) -> httpx.Response:
    return await client.post(
        "/api/documents",
        headers=user.headers,
        files={"file": ("budget.txt", secret.text, "text/plain")},
        data=form,
    )


async def cites(client: httpx.AsyncClient, user: User, doc_id: str, secret: Secret) -> set[str]:
    """Through which doors ``user`` reaches the document: list, get, search
    and chat in each mode, /v1. Those it does not reach never show its text."""
    found = set()
    listed = await client.get("/api/documents", headers=user.headers)
    if doc_id in {d["id"] for d in listed.json()}:
        found.add("list")
    got = await client.get(f"/api/documents/{doc_id}", headers=user.headers)
    assert got.status_code in (200, 404), got.text
    if got.status_code == 200:
        found.add("get")
    for mode in MODES:
        body = {"query": secret.question, "retrieval": mode, "reranking": "none"}
        searched = await client.post("/api/search", headers=user.headers, json=body)
        assert searched.status_code == 200, searched.text
        passages = searched.json()["passages"]
        if any(p["document_id"] == doc_id for p in passages):
            found.add(f"search-{mode}")
        else:
            assert secret.code not in str(passages)  # (the query echoes it)
        chat = await client.post(
            "/api/chat", headers=user.headers, json={"message": secret.question, "retrieval": mode}
        )
        assert chat.status_code == 200, chat.text
        if any(s["document_id"] == doc_id for s in chat.json()["sources"]):
            found.add(f"chat-{mode}")
        else:
            assert secret.number not in chat.json()["answer"]
    completion = await client.post(
        "/v1/chat/completions",
        headers=user.headers,
        json={"model": "ragstream", "messages": [{"role": "user", "content": secret.question}]},
    )
    assert completion.status_code == 200, completion.text
    if any(s["document_id"] == doc_id for s in completion.json()["sources"]):
        found.add("v1")
    else:
        assert secret.number not in completion.json()["choices"][0]["message"]["content"]
    return found


EVERY_DOOR = {"list", "get", "v1", *(f"{k}-{m}" for k in ("search", "chat") for m in MODES)}


async def test_a_document_shared_with_a_group_reaches_its_members_and_nobody_else(
    client: httpx.AsyncClient, org: Org, db: asyncpg.Pool
) -> None:
    secret = Secret.new()
    uploaded = await upload(client, org.m1, secret, groups=org.group)
    assert uploaded.status_code == 202, uploaded.text
    assert (uploaded.json()["visibility"], uploaded.json()["groups"]) == ("groups", [org.group])
    doc_id = uploaded.json()["id"]
    assert (await wait_for_status(client, org.m1, doc_id))["status"] == "indexed"

    assert await cites(client, org.m2, doc_id, secret) == EVERY_DOOR
    seen = (await client.get(f"/api/documents/{doc_id}", headers=org.m2.headers)).json()
    assert (seen["mine"], seen["groups"]) == (False, [org.group])
    # Neither the tenant's member outside the group, nor its admin (no
    # member either), nor the other tenant's member of a same-named group.
    for user in (org.out, org.admin, org.b1):
        assert await cites(client, user, doc_id, secret) == set(), user.username
    # A member reads it but may not change it.
    patch = await client.patch(
        f"/api/documents/{doc_id}", headers=org.m2.headers, json={"visibility": "tenant"}
    )
    assert patch.status_code == 403, patch.text

    # Removed from the group: gone at once, through every door.
    await set_member(client, org.admin, org.group_id, org.m2, member=False)
    assert await cites(client, org.m2, doc_id, secret) == set()
    await set_member(client, org.admin, org.group_id, org.m2, member=True)
    assert await cites(client, org.m2, doc_id, secret) == EVERY_DOOR

    # Unshared: only the owner again.
    private = await client.patch(
        f"/api/documents/{doc_id}", headers=org.m1.headers, json={"visibility": "private"}
    )
    assert private.status_code == 200, private.text
    assert (private.json()["visibility"], private.json()["groups"]) == ("private", [])
    assert await cites(client, org.m2, doc_id, secret) == set()
    assert await cites(client, org.m1, doc_id, secret) == EVERY_DOOR
    links = await db.fetchval(
        "SELECT count(*) FROM document_groups WHERE document_id = $1", uuid.UUID(doc_id)
    )
    assert links == 0
    actions = await db.fetch(
        "SELECT action FROM audit_log WHERE target = $1 ORDER BY id", str(doc_id)
    )
    assert [a["action"] for a in actions] == [
        "document.uploaded",
        "document.shared_with_groups",
        "document.unshared",
    ]


async def test_who_may_share_with_which_group(client: httpx.AsyncClient, org: Org) -> None:
    """A member shares only with groups they are in; an admin with any of the
    tenant's; an unknown name is 400 with the reason, and nothing is stored."""
    secret = Secret.new()
    other_name = f"legal-{uuid.uuid4().hex[:6]}"
    await make_group(client, org.admin, other_name)
    before = len((await client.get("/api/documents", headers=org.m1.headers)).json())

    refused = await upload(client, org.m1, secret, groups=other_name)
    assert refused.status_code == 403, refused.text
    assert "groups you are in" in refused.json()["detail"]
    unknown = await upload(client, org.m1, secret, visibility="groups", groups="no-such-group")
    assert unknown.status_code == 400 and "no group named" in unknown.json()["detail"]
    bare = await upload(client, org.m1, secret, visibility="groups")
    assert bare.status_code == 400, bare.text
    assert len((await client.get("/api/documents", headers=org.m1.headers)).json()) == before

    # The admin shares their own document with a group they are not in.
    made = await upload(client, org.admin, secret)
    doc_id = made.json()["id"]
    shared = await client.patch(
        f"/api/documents/{doc_id}",
        headers=org.admin.headers,
        json={"groups": [org.group.upper(), other_name]},  # names ignore case
    )
    assert shared.status_code == 200, shared.text
    assert shared.json()["visibility"] == "groups"
    assert sorted(shared.json()["groups"]) == sorted([org.group, other_name])
    assert (await wait_for_status(client, org.admin, doc_id))["status"] == "indexed"
    assert "search-lexical" in await cites(client, org.m1, doc_id, secret)

    # The caller's own groups.
    mine = await client.get("/api/groups", headers=org.m1.headers)
    assert [g["name"] for g in mine.json()] == [org.group]
    assert (await client.get("/api/groups", headers=org.out.headers)).json() == []
    # Deleting the group ends its shares at once.
    deleted = await client.delete(f"/api/admin/groups/{org.group_id}", headers=org.admin.headers)
    assert deleted.status_code == 204, deleted.text
    assert await cites(client, org.m1, doc_id, secret) == set()
    gone = await client.get(f"/api/documents/{doc_id}", headers=org.admin.headers)
    assert gone.json()["groups"] == [other_name]


async def test_a_member_gets_a_group_documents_status_events_a_non_member_does_not(
    client: httpx.AsyncClient, org: Org
) -> None:
    secret = Secret.new()

    async def events(user: User, seconds: float) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async with client.stream(
                    "GET", "/api/documents/events", headers=user.headers, timeout=None
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            seen.append(json.loads(line[5:]))
        return seen

    member = asyncio.create_task(events(org.m2, 8))
    outsider = asyncio.create_task(events(org.out, 8))
    await asyncio.sleep(1.5)  # both subscribed
    made = await upload(client, org.m1, secret, groups=org.group)
    doc_id = made.json()["id"]
    member_saw, outsider_saw = await member, await outsider
    assert doc_id in {e["document_id"] for e in member_saw}
    assert doc_id not in {e["document_id"] for e in outsider_saw}


# --- the answer cache -------------------------------------------------------


@pytest.fixture(scope="module")
def cache_stack(
    app_env: dict[str, str], log_dir: Path, workers: list[Component]
) -> Iterator[tuple[Component, Component]]:
    with side_stack(app_env, log_dir, "groups-cache", RAG_USE_CACHE="true") as stack:
        yield stack


def _cached(query: Component, correlation_id: str) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in query.log().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if (
                    event.get("event") == "Chat answered"
                    and event.get("correlation_id") == correlation_id
                ):
                    return bool(event["cached"])
        time.sleep(0.05)
    raise AssertionError(f"no 'Chat answered' for {correlation_id}")


async def test_a_cached_answer_citing_a_group_document_is_not_served_to_a_removed_member(
    client: httpx.AsyncClient, org: Org, cache_stack: tuple[Component, Component]
) -> None:
    gateway, query = cache_stack
    secret = Secret.new()
    made = await upload(client, org.m1, secret, groups=org.group)
    doc_id = made.json()["id"]
    assert (await wait_for_status(client, org.m1, doc_id))["status"] == "indexed"
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=60) as cached_client:

        async def ask() -> tuple[dict[str, Any], bool]:
            correlation_id = uuid.uuid4().hex
            response = await cached_client.post(
                "/api/chat",
                headers={**org.m2.headers, "X-Request-ID": correlation_id},
                json={"message": secret.question},
            )
            assert response.status_code == 200, response.text
            return response.json(), await asyncio.to_thread(_cached, query, correlation_id)

        first, was_cached = await ask()
        assert not was_cached and doc_id in {s["document_id"] for s in first["sources"]}
        again, was_cached = await ask()
        assert was_cached and again["answer"] == first["answer"]

        await set_member(client, org.admin, org.group_id, org.m2, member=False)
        after, was_cached = await ask()
        assert not was_cached
        assert doc_id not in {s["document_id"] for s in after["sources"]}
        assert secret.number not in after["answer"]


# --- the groups claim of a real OpenID provider -----------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed(provider: OidcProvider, login: str, groups: list[str] | None) -> str:
    """A token of the provider's for ``login`` (its tenant acme) with these
    groups (None: no groups claim at all)."""
    now = int(time.time())
    claims = {
        "sub": login,
        "aud": API_AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "tenant": provider.name("acme"),
        "groups": groups,
        "preferred_username": provider.name(login),
    }
    return provider.sign(claims)


async def my_groups(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    response = await client.get("/api/groups", headers=bearer(token))
    assert response.status_code == 200, response.text
    return {g["name"]: g["origin"] for g in response.json()}


async def test_the_groups_claim_makes_and_ends_memberships_at_each_sign_in(
    oidc_client: httpx.AsyncClient, oidc_provider: OidcProvider, db: asyncpg.Pool
) -> None:
    # grace's real sign-in (authorization code with PKCE): her claim names
    # auditors and staff, made as claim groups of her tenant.
    grace_token = (await oidc_provider.sign_in("grace")).access_token
    assert await my_groups(oidc_client, grace_token) == {"auditors": "claim", "staff": "claim"}
    heidi_token = (await oidc_provider.sign_in("heidi")).access_token  # auditors only
    heidi = (await oidc_client.get("/api/auth/verify", headers=bearer(heidi_token))).json()

    # grace shares a document with auditors; heidi (in the claim) finds it.
    secret = Secret.new()
    grace = User("grace", grace_token, "", "")
    made = await upload(oidc_client, grace, secret, groups="auditors")
    assert made.status_code == 202, made.text
    doc_id = made.json()["id"]
    assert (await wait_for_status(oidc_client, grace, doc_id))["status"] == "indexed"
    heidi_user = User("heidi", heidi_token, heidi["id"], heidi["tenant_id"])
    assert "search-lexical" in await cites(oidc_client, heidi_user, doc_id, secret)

    # An admin adds heidi to staff by hand: the claim does not undo that.
    admin_token = (await oidc_provider.sign_in("alice")).access_token  # rag-admins
    staff = {
        g["name"]: g["id"]
        for g in (await oidc_client.get("/api/admin/groups", headers=bearer(admin_token))).json()
    }["staff"]
    added = await oidc_client.put(
        f"/api/admin/groups/{staff}/members/{heidi['id']}", headers=bearer(admin_token)
    )
    assert added.status_code == 204, added.text

    # heidi's next token no longer names auditors: she loses the document at once.
    left = signed(oidc_provider, "heidi", [])
    assert await my_groups(oidc_client, left) == {"staff": "claim"}  # the group's origin
    heidi_now = User("heidi", left, heidi["id"], heidi["tenant_id"])
    assert await cites(oidc_client, heidi_now, doc_id, secret) == set()
    origins = await db.fetch(
        "SELECT g.name, m.origin FROM group_members m JOIN groups g ON g.id = m.group_id"
        " WHERE m.user_id = $1",
        uuid.UUID(heidi["id"]),
    )
    assert {(r["name"], r["origin"]) for r in origins} == {("staff", "admin")}
    # A token without the groups claim changes nothing; one naming it again restores it.
    assert "search-lexical" not in await cites(
        oidc_client, User("heidi", signed(oidc_provider, "heidi", None), "", ""), doc_id, secret
    )
    back = signed(oidc_provider, "heidi", ["auditors"])
    assert "search-lexical" in await cites(
        oidc_client, User("heidi", back, heidi["id"], ""), doc_id, secret
    )
    audit = await db.fetch(
        "SELECT detail::text AS detail, jsonb_typeof(detail) AS kind FROM audit_log"
        " WHERE actor_id = $1 AND action = 'group.synced_by_sso' ORDER BY id",
        uuid.UUID(heidi["id"]),
    )
    # Stored as a JSON object, so SQL can query its fields.
    assert {row["kind"] for row in audit} == {"object"}
    details = [json.loads(row["detail"]) for row in audit]
    assert details[-2:] == [
        {"joined": [], "left": ["auditors"]},
        {"joined": ["auditors"], "left": []},
    ]


# --- the command line ---------------------------------------------------------


async def test_rag_groups_and_rag_docs_share(
    client: httpx.AsyncClient, org: Org, gateway: Component, tmp_path: Path
) -> None:
    admin_home, m1_home = tmp_path / "admin", tmp_path / "m1"
    assert sign_in(admin_home, gateway, org.admin).returncode == 0
    assert sign_in(m1_home, gateway, org.m1).returncode == 0
    name = f"ops-{uuid.uuid4().hex[:6]}"
    made = rag(admin_home, "groups", "create", name)
    assert made.returncode == 0 and f"created group {name}" in made.stdout, made.stderr
    added = rag(admin_home, "groups", "add", name, org.m1.username, org.out.username)
    assert added.returncode == 0, added.stderr
    members = json.loads(rag(admin_home, "groups", "members", name, "--json").stdout)
    assert {m["username"] for m in members} == {org.m1.username, org.out.username}
    every = json.loads(rag(admin_home, "groups", "list", "--all", "--json").stdout)
    assert {g["name"] for g in every} == {org.group, name}
    mine = json.loads(rag(m1_home, "groups", "list", "--json").stdout)
    assert {g["name"] for g in mine} == {org.group, name}

    secret = Secret.new()
    doc_id = (await upload(client, org.m1, secret)).json()["id"]
    shared = rag(m1_home, "docs", "share", doc_id, "--group", name)
    assert shared.returncode == 0 and f"groups {name}" in shared.stdout, shared.stderr
    assert (await wait_for_status(client, org.out, doc_id))["groups"] == [name]
    removed = rag(admin_home, "groups", "remove", name, org.out.username)
    assert removed.returncode == 0, removed.stderr
    got = await client.get(f"/api/documents/{doc_id}", headers=org.out.headers)
    assert got.status_code == 404
    # Refusals are one line, exit 1: a group m1 is not in, a user who is not there.
    other = f"hr-{uuid.uuid4().hex[:6]}"
    assert rag(admin_home, "groups", "create", other).returncode == 0
    assert "groups you are in" in one_line(rag(m1_home, "docs", "share", doc_id, "-g", other))
    assert "no user named" in one_line(rag(admin_home, "groups", "add", name, "nobody-at-all"))
    assert "administrator" in one_line(rag(m1_home, "groups", "create", "mine"))
    listed = rag(m1_home, "docs", "list")
    assert f"groups: {name}" in listed.stdout, listed.stdout
    assert rag(admin_home, "groups", "delete", other).returncode == 0
