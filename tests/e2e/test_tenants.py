"""Tenants of several users and their admins: each admin sees and acts on
their own tenant's users only, members reach no admin route, disabling ends
a user's access on their next request, and the audit log is per tenant.

Every tenant here has an admin and two members, so a check on the tenant
alone (a member acting as admin) or on the user alone (an admin reaching
into another tenant) fails some assertion."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.api import User, new_user
from tests.support.processes import start_gateway

PASSWORD = "a-long-password"


@dataclass
class Tenant:
    admin: User
    members: list[User]

    @property
    def everyone(self) -> list[User]:
        return [self.admin, *self.members]


async def login(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})


async def add_member(client: httpx.AsyncClient, admin: User, role: str = "member") -> User:
    username = f"member-{uuid.uuid4().hex[:10]}"
    body = {"username": username, "password": PASSWORD, "role": role}
    created = await client.post("/api/admin/users", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == role
    signed_in = await login(client, username)
    assert signed_in.status_code == 200, signed_in.text
    return User(username, signed_in.json()["access_token"], created.json()["id"])


async def new_tenant(client: httpx.AsyncClient) -> Tenant:
    admin = await new_user(client, "admin")
    return Tenant(admin, [await add_member(client, admin), await add_member(client, admin)])


async def whoami(client: httpx.AsyncClient, user: User) -> httpx.Response:
    return await client.get("/api/auth/verify", headers=user.headers)


async def set_disabled(
    client: httpx.AsyncClient, admin: User, user_id: str, *, disabled: bool
) -> httpx.Response:
    verb = "disable" if disabled else "enable"
    return await client.post(f"/api/admin/users/{user_id}/{verb}", headers=admin.headers)


async def test_an_admin_manages_only_their_own_tenant(client: httpx.AsyncClient) -> None:
    a, b = await new_tenant(client), await new_tenant(client)
    # Members belong to their admin's tenant, with the member role.
    tenant_a = (await whoami(client, a.admin)).json()["tenant_id"]
    for member in a.members:
        me = (await whoami(client, member)).json()
        assert (me["tenant_id"], me["role"]) == (tenant_a, "member")

    for tenant in (a, b):
        listed = await client.get("/api/admin/users", headers=tenant.admin.headers)
        assert listed.status_code == 200, listed.text
        roles = {u["username"]: u["role"] for u in listed.json()}
        assert roles == {
            tenant.admin.username: "admin",
            **{m.username: "member" for m in tenant.members},
        }
        assert all(u["disabled_at"] is None for u in listed.json())

    # Another tenant's user is exactly as unknown as a user that never was.
    missing = await set_disabled(client, a.admin, str(uuid.uuid4()), disabled=True)
    assert missing.status_code == 404
    for victim in b.everyone:
        for disabled in (True, False):
            response = await set_disabled(client, a.admin, victim.id, disabled=disabled)
            assert (response.status_code, response.json()) == (404, missing.json())
    for user in b.everyone:
        assert (await whoami(client, user)).status_code == 200


async def test_a_member_reaches_no_admin_route(client: httpx.AsyncClient) -> None:
    a = await new_tenant(client)
    member, other = a.members
    intruder = f"intruder-{uuid.uuid4().hex[:10]}"
    attempts = [
        ("GET", "/api/admin/users", None),
        ("POST", "/api/admin/users", {"username": intruder, "password": PASSWORD}),
        ("POST", f"/api/admin/users/{other.id}/disable", None),
        ("POST", f"/api/admin/users/{a.admin.id}/disable", None),
        ("POST", f"/api/admin/users/{other.id}/enable", None),
        ("GET", "/api/admin/audit", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=member.headers)
        assert response.status_code == 403, (path, response.text)
        assert "administrator" in response.json()["detail"]
    assert (await login(client, intruder)).status_code == 401
    for user in a.everyone:
        assert (await whoami(client, user)).status_code == 200
    # Unauthenticated: 401, not 403.
    assert (await client.get("/api/admin/users")).status_code == 401


async def test_disabling_ends_access_on_the_next_request(client: httpx.AsyncClient) -> None:
    a = await new_tenant(client)
    target, bystander = a.members
    key = await client.post("/api/keys", json={"name": "ci"}, headers=target.headers)
    assert key.status_code == 201, key.text
    key_headers = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await client.get("/api/documents", headers=key_headers)).status_code == 200

    disabled = await set_disabled(client, a.admin, target.id, disabled=True)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    assert (await whoami(client, target)).status_code == 401
    assert (await client.get("/api/documents", headers=key_headers)).status_code == 401
    assert (await login(client, target.username)).status_code == 401
    # Only that user: the other member and the admin carry on.
    assert (await whoami(client, bystander)).status_code == 200
    listed = {
        u["id"]: u for u in (await client.get("/api/admin/users", headers=a.admin.headers)).json()
    }
    assert listed[target.id]["disabled_at"] is not None
    assert listed[bystander.id]["disabled_at"] is None

    own = await set_disabled(client, a.admin, a.admin.id, disabled=True)
    assert own.status_code == 400, own.text
    assert (await whoami(client, a.admin)).status_code == 200

    enabled = await set_disabled(client, a.admin, target.id, disabled=False)
    assert (enabled.status_code, enabled.json()["disabled_at"]) == (200, None)
    signed_in = await login(client, target.username)
    assert signed_in.status_code == 200, signed_in.text
    again = User(target.username, signed_in.json()["access_token"], target.id)
    assert (await whoami(client, again)).status_code == 200
    assert (await client.get("/api/documents", headers=key_headers)).status_code == 200
    # The sessions the disabling ended stay ended: re-enabling a stolen
    # account does not revive the thief's tokens.
    assert (await whoami(client, target)).status_code == 401


async def test_the_audit_log_shows_the_callers_tenant_only(client: httpx.AsyncClient) -> None:
    a, b = await new_tenant(client), await new_tenant(client)
    for tenant in (a, b):
        victim = tenant.members[0].id
        assert (await set_disabled(client, tenant.admin, victim, disabled=True)).status_code == 200
        assert (await set_disabled(client, tenant.admin, victim, disabled=False)).status_code == 200

    response = await client.get("/api/admin/audit", headers=a.admin.headers)
    assert response.status_code == 200, response.text
    entries = response.json()
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    b_ids = {u.id for u in b.everyone}
    assert not b_ids & {e["target"] for e in entries}
    assert not b_ids & {e["actor_id"] for e in entries}
    mine = [(e["action"], e["target"]) for e in entries if e["actor_id"] == a.admin.id]
    victim = a.members[0].id
    assert [x for x in mine if x[0] != "auth.login"] == [
        ("user.enabled", victim),
        ("user.disabled", victim),
        ("user.created", a.members[1].id),
        ("user.created", a.members[0].id),
        ("user.registered", a.admin.id),
    ]
    assert all("password" not in str(e["detail"]) for e in entries)

    created = await client.get(
        "/api/admin/audit", params={"action": "user.created"}, headers=a.admin.headers
    )
    assert [e["target"] for e in created.json()] == [a.members[1].id, a.members[0].id]
    page = await client.get(
        "/api/admin/audit", params={"limit": 1, "before": ids[0]}, headers=a.admin.headers
    )
    assert [e["id"] for e in page.json()] == ids[1:2]
    bad = await client.get("/api/admin/audit", params={"action": "nope"}, headers=a.admin.headers)
    assert bad.status_code == 422


async def test_admins_create_admins_and_usernames_stay_unique(client: httpx.AsyncClient) -> None:
    a = await new_tenant(client)
    deputy = await add_member(client, a.admin, role="admin")
    assert (await client.get("/api/admin/users", headers=deputy.headers)).status_code == 200
    taken = {"username": a.members[0].username, "password": PASSWORD}
    response = await client.post("/api/admin/users", json=taken, headers=deputy.headers)
    assert response.status_code == 409, response.text
    weak = {"username": f"weak-{uuid.uuid4().hex[:8]}", "password": "Zq9#wX"}
    response = await client.post("/api/admin/users", json=weak, headers=deputy.headers)
    assert response.status_code == 422
    assert "Zq9#wX" not in response.text


@pytest.fixture(scope="module")
def closed_gateway(app_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """A gateway started with ALLOW_REGISTRATION=false; its base URL."""
    env = {**app_env, "ALLOW_REGISTRATION": "false"}
    gateway = start_gateway("gateway-closed", env, log_dir)
    try:
        yield gateway.base_url or ""
    finally:
        gateway.stop()


async def test_closed_registration_refuses_newcomers_but_admins_add_users(
    client: httpx.AsyncClient, closed_gateway: str
) -> None:
    a = await new_tenant(client)
    username = f"newcomer-{uuid.uuid4().hex[:10]}"
    body = {"username": username, "password": PASSWORD}
    async with httpx.AsyncClient(base_url=closed_gateway, timeout=30) as closed:
        refused = await closed.post("/api/auth/register", json=body)
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "registration is closed: ask an administrator of your organisation for an account"
        )
        assert (await login(closed, username)).status_code == 401

        created = await closed.post("/api/admin/users", json=body, headers=a.admin.headers)
        assert created.status_code == 201, created.text
        assert (await login(closed, username)).status_code == 200
