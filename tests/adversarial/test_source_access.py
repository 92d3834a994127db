"""Folder-sync sources read files on the servers' disks: only a tenant's
admins add or see them, only under SYNC_ROOTS (no `..`, no symbolic link
out), and another tenant's source answers like one that does not exist."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.adversarial.conftest import World
from tests.support.api import member_of, new_user


@pytest.fixture
def sync_root(app_env: dict[str, str]) -> Path:
    return Path(json.loads(app_env["SYNC_ROOTS"])[0])


def body(path: str) -> dict[str, object]:
    return {"name": f"s-{uuid.uuid4().hex[:8]}", "path": path}


async def test_a_member_cannot_add_list_or_read_sources(
    client: httpx.AsyncClient, db: asyncpg.Pool, world: World, sync_root: Path
) -> None:
    member = await member_of(client, db, world.victim.tenant_id, "sync-member")
    added = await client.post("/api/sources", headers=member.headers, json=body(str(sync_root)))
    assert added.status_code == 403, added.text
    assert "administrator" in added.json()["detail"]
    listed = await client.get("/api/sources", headers=member.headers)
    assert listed.status_code == 403
    source = world.victim_ids["source"]
    for method, path in (
        ("GET", f"/api/sources/{source}"),
        ("POST", f"/api/sources/{source}/run"),
        ("DELETE", f"/api/sources/{source}"),
    ):
        response = await client.request(method, path, headers=member.headers)
        assert response.status_code == 403, (method, path, response.text)


async def test_another_tenants_source_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    outsider = await new_user(client, "sync-outsider")
    source = world.victim_ids["source"]
    for method, path in (
        ("GET", f"/api/sources/{source}"),
        ("POST", f"/api/sources/{source}/run"),
        ("DELETE", f"/api/sources/{source}"),
    ):
        theirs = await client.request(method, path, headers=outsider.headers)
        unknown = await client.request(
            method, path.replace(source, str(uuid.uuid4())), headers=outsider.headers
        )
        assert theirs.status_code == unknown.status_code == 404, (method, theirs.text)
        assert theirs.json() == unknown.json()
    assert (await client.get("/api/sources", headers=outsider.headers)).json() == []
    # Still there, not being removed.
    victims = await client.get(f"/api/sources/{source}", headers=world.victim.headers)
    assert victims.status_code == 200 and victims.json()["state"] != "removing", victims.text


@pytest.mark.parametrize(
    ("make_path", "status", "reason"),
    [
        (lambda root: "/etc", 403, "not under a directory of SYNC_ROOTS"),
        (lambda root: str(root.parent), 403, "not under a directory of SYNC_ROOTS"),
        (lambda root: f"{root}-twin", 403, "not under a directory of SYNC_ROOTS"),
        (lambda root: f"{root}/../..", 400, "'..'"),
        (lambda root: f"{root}/x/../../etc", 400, "'..'"),
        (lambda root: f"{root}/escape", 403, "through a symbolic link"),
        (lambda root: f"{root}/escape/passwd", 403, "through a symbolic link"),
    ],
)
async def test_paths_outside_the_roots_are_refused(
    client: httpx.AsyncClient,
    world: World,
    sync_root: Path,
    make_path: object,
    status: int,
    reason: str,
) -> None:
    escape = sync_root / "escape"
    if not escape.is_symlink():
        escape.symlink_to("/etc")
    path = make_path(sync_root)  # type: ignore[operator]
    refused = await client.post("/api/sources", headers=world.victim.headers, json=body(path))
    assert refused.status_code == status, refused.text
    assert reason in refused.json()["detail"], refused.text


async def test_malformed_sources_are_refused(
    client: httpx.AsyncClient, world: World, sync_root: Path
) -> None:
    headers = world.victim.headers
    # An empty folder of its own: a sync worker of a later test runs it quickly.
    folder = sync_root / f"malformed-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    relative = await client.post("/api/sources", headers=headers, json=body("shares/team"))
    assert relative.status_code == 422, relative.text
    reserved = await client.post(
        "/api/sources", headers=headers, json={**body(str(folder)), "meta": {"path": "x"}}
    )
    assert reserved.status_code == 400 and "sync's own" in reserved.json()["detail"]
    first = await client.post("/api/sources", headers=headers, json=body(str(folder)))
    assert first.status_code == 201, first.text
    again = {**body(str(folder)), "name": first.json()["name"]}
    taken = await client.post("/api/sources", headers=headers, json=again)
    assert taken.status_code == 409, taken.text
