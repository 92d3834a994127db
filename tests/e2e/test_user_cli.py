"""``rag user create``: the first admin of a new tenant, then a member of it,
straight into the database the gateway reads; both can sign in."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from uuid import UUID

import asyncpg
import httpx

PASSWORD = "a-long-password"


def rag_user_create(
    env: dict[str, str], *args: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream", "user", "create", *args, "--password-stdin"],
        input=password + "\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def sign_in(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_the_cli_bootstraps_an_admin_and_adds_members(
    app_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:8]}"
    boss, worker = f"boss-{uuid.uuid4().hex[:8]}", f"worker-{uuid.uuid4().hex[:8]}"

    first = rag_user_create(app_env, "--username", boss, "--tenant", tenant, "--admin")
    assert first.returncode == 0, first.stderr
    assert f"admin {boss}" in first.stdout and f"new tenant {tenant}" in first.stdout
    second = rag_user_create(app_env, "--username", worker, "--tenant", tenant)
    assert second.returncode == 0, second.stderr
    assert f"member {worker}" in second.stdout and f"existing tenant {tenant}" in second.stdout
    assert PASSWORD not in first.stdout + first.stderr + second.stdout + second.stderr

    boss_headers, worker_headers = await sign_in(client, boss), await sign_in(client, worker)
    me = (await client.get("/api/auth/verify", headers=boss_headers)).json()
    assert me["role"] == "admin" and me["id"] in first.stdout and me["tenant_id"] in first.stdout
    colleague = (await client.get("/api/auth/verify", headers=worker_headers)).json()
    assert (colleague["role"], colleague["tenant_id"]) == ("member", me["tenant_id"])
    assert colleague["id"] in second.stdout
    listed = await client.get("/api/admin/users", headers=boss_headers)
    assert {u["username"] for u in listed.json()} == {boss, worker}
    assert (await client.get("/api/admin/users", headers=worker_headers)).status_code == 403
    audit = (await client.get("/api/admin/audit", headers=boss_headers)).json()
    created = [e["target"] for e in audit if e["action"] == "user.created"]
    assert created == [colleague["id"], me["id"]]


def test_the_cli_refuses_taken_names_and_bad_passwords(app_env: dict[str, str]) -> None:
    tenant, name = f"taken-{uuid.uuid4().hex[:8]}", f"someone-{uuid.uuid4().hex[:8]}"
    assert rag_user_create(app_env, "--username", name, "--tenant", tenant).returncode == 0

    again = rag_user_create(app_env, "--username", name, "--tenant", f"other-{tenant}")
    assert again.returncode != 0
    assert again.stderr.strip() == f"rag user: username {name!r} is already taken"
    assert again.stdout == ""
    # The refusal left no empty tenant behind.
    later = rag_user_create(app_env, "--username", f"y-{name}", "--tenant", f"other-{tenant}")
    assert f"new tenant other-{tenant}" in later.stdout, later.stderr

    short = rag_user_create(
        app_env, "--username", f"x-{name}", "--tenant", tenant, password="short"
    )
    assert short.returncode != 0
    assert short.stderr.strip().startswith("rag user: invalid password")
    # No way to put the password on the command line, where `ps` shows it.
    argument = subprocess.run(
        [
            sys.executable,
            "-m",
            "ragstream",
            "user",
            "create",
            "--username",
            "x",
            "--tenant",
            "t",
            "--password",
            PASSWORD,
        ],
        env={**os.environ, **app_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert argument.returncode == 2
    assert "unrecognized arguments" in argument.stderr


async def test_a_self_registered_user_never_gets_a_tenant_an_operator_names_later(
    app_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    """Registration open: someone registers first, under the very name an
    organisation will get, and tries to pick their tenant too; the operator
    then creates tenant acme and its admin. Before, the self-registered
    tenant was named after the username, and `rag user create --tenant`
    joined it: its owner became admin over acme's admin and documents."""
    acme = f"acme-{uuid.uuid4().hex[:8]}"
    squatter = {"username": acme, "password": PASSWORD}
    # Fields that would choose the tenant or role are refused, not ignored.
    for extra in ({"tenant": acme}, {"tenant_id": str(uuid.uuid4())}, {"role": "admin"}):
        refused = await client.post("/api/auth/register", json={**squatter, **extra})
        assert refused.status_code == 422, refused.text
    registered = await client.post("/api/auth/register", json=squatter)
    assert registered.status_code == 201, registered.text
    squatter_headers = await sign_in(client, acme)
    own = (await client.get("/api/auth/verify", headers=squatter_headers)).json()
    assert own["role"] == "admin"  # of a tenant of their own
    boss = f"boss-{uuid.uuid4().hex[:8]}"
    made = rag_user_create(app_env, "--username", boss, "--tenant", acme, "--admin")
    assert made.returncode == 0, made.stderr
    assert f"new tenant {acme}" in made.stdout, made.stdout
    boss_headers = await sign_in(client, boss)
    theirs = (await client.get("/api/auth/verify", headers=boss_headers)).json()
    assert theirs["tenant_id"] != own["tenant_id"]
    # acme's admins are the operator's; the squatter's tenant is theirs alone.
    acme_users = (await client.get("/api/admin/users", headers=boss_headers)).json()
    assert [u["username"] for u in acme_users] == [boss]
    own_users = (await client.get("/api/admin/users", headers=squatter_headers)).json()
    assert [u["username"] for u in own_users] == [acme]

    # A document acme shares with its tenant is not the squatter's to see.
    files = {"file": ("plans.txt", b"acme's plans for next year", "text/plain")}
    uploaded = await client.post("/api/documents", headers=boss_headers, files=files)
    assert uploaded.status_code == 202, uploaded.text
    doc_id = uploaded.json()["id"]
    shared = await client.patch(
        f"/api/documents/{doc_id}", headers=boss_headers, json={"visibility": "tenant"}
    )
    assert shared.status_code == 200, shared.text
    listed = (await client.get("/api/documents", headers=squatter_headers)).json()
    assert doc_id not in {d["id"] for d in listed}
    seen = await client.get(f"/api/documents/{doc_id}", headers=squatter_headers)
    assert seen.status_code == 404
    # The self-registered tenant's name is made of its random id alone.
    conn = await asyncpg.connect(app_env["DATABASE_URL"])
    try:
        name = await conn.fetchval("SELECT name FROM tenants WHERE id = $1", UUID(own["tenant_id"]))
    finally:
        await conn.close()
    assert name == f"self-{own['tenant_id']}"
