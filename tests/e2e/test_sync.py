"""Folder sync end to end: real sync workers (processes) walk folders under
SYNC_ROOTS and keep a tenant's documents in line with the files, through the
same intake, release and ingest workers as uploads.

Between runs files are added, changed, renamed, deleted and made unreadable;
a worker is SIGKILLed in the middle of a run and another finishes it without
a duplicate; two workers started on one source never run it together; and
`rag sync` drives it all from the command line.

Unreadable files: the tests may run as root, who reads a mode-000 file. The
sync workers here are started under ``setpriv`` without the capabilities
that bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) when the
tests run as root, so a mode-000 file really is unreadable to them, as it is
to a worker running as a user (the k8s manifest runs it as user 10001).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.test_cli_client import one_line, rag, sign_in
from tests.support.api import User, member_of, new_user, wait_for_status
from tests.support.processes import Component, bound_by_permissions, start_worker

SECTION = "## {title}\n\n{body}\n"


def sections(*bodies: str) -> str:
    """Markdown with one chunk per section (a chunk never spans headings)."""
    return "\n".join(
        SECTION.format(title=f"Part {n}", body=body) for n, body in enumerate(bodies, 1)
    )


@pytest.fixture
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=3)
    yield pool
    await pool.close()


@pytest.fixture
def sync_env(app_env: dict[str, str]) -> dict[str, str]:
    return {**app_env, "SYNC_POLL_SECONDS": "0.3", "SYNC_LEASE_SECONDS": "5"}


@pytest.fixture
def folder(app_env: dict[str, str]) -> Path:
    root = Path(json.loads(app_env["SYNC_ROOTS"])[0])
    made = root / f"share-{uuid.uuid4().hex[:8]}"
    made.mkdir()
    return made


def start_sync_worker(env: dict[str, str], log_dir: Path, name: str) -> Component:
    return start_worker("sync", env, log_dir, name=name, prefix=bound_by_permissions())


@pytest.fixture
def sync_worker(sync_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    worker = start_sync_worker(sync_env, log_dir, f"sync-worker-{uuid.uuid4().hex[:6]}")
    yield worker
    worker.stop()


async def add_source(
    client: httpx.AsyncClient, admin: User, folder: Path, **options: Any
) -> dict[str, Any]:
    body = {"name": folder.name, "path": str(folder), "interval_seconds": 3600, **options}
    made = await client.post("/api/sources", headers=admin.headers, json=body)
    assert made.status_code == 201, made.text
    source: dict[str, Any] = made.json()
    return source


async def source_detail(client: httpx.AsyncClient, admin: User, source_id: str) -> Any:
    got = await client.get(f"/api/sources/{source_id}", headers=admin.headers)
    assert got.status_code == 200, got.text
    return got.json()


async def next_run(
    client: httpx.AsyncClient, admin: User, source_id: str, after: str | None, timeout: float = 90
) -> dict[str, Any]:
    """The source once a run later than ``after`` (a run id) has finished."""
    async with asyncio.timeout(timeout):
        while True:
            detail: dict[str, Any] = await source_detail(client, admin, source_id)
            last = detail["last_run"]
            if last is not None and last["id"] != after and detail["state"] == "idle":
                return detail
            await asyncio.sleep(0.2)


async def run_again(client: httpx.AsyncClient, admin: User, source: dict[str, Any]) -> Any:
    before = (await source_detail(client, admin, source["id"]))["last_run"]
    asked = await client.post(f"/api/sources/{source['id']}/run", headers=admin.headers)
    assert asked.status_code == 202, asked.text
    return await next_run(client, admin, source["id"], before["id"] if before else None)


async def synced_documents(pool: asyncpg.Pool, tenant_id: str, name: str) -> list[Any]:
    return list(
        await pool.fetch(
            "SELECT id, filename, meta->>'path' AS path, sha256, status FROM documents"
            " WHERE tenant_id=$1 AND meta->>'source'=$2 ORDER BY meta->>'path'",
            uuid.UUID(tenant_id),
            name,
        )
    )


def chunks_stored(ingest: Component, document_id: str) -> list[tuple[int, int]]:
    """(embedded, kept) of each time an ingest worker stored the document's chunks."""
    found = []
    for line in ingest.log().splitlines():
        if "Chunks stored" in line and document_id in line:
            entry = json.loads(line)
            found.append((entry["embedded"], entry["kept"]))
    return found


async def until(
    check: Callable[[], Awaitable[bool]], every: float = 0.2, timeout: float = 60
) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - a condition in another process
            await asyncio.sleep(every)


async def _gone(client: httpx.AsyncClient, admin: User, source_id: str) -> bool:
    got = await client.get(f"/api/sources/{source_id}", headers=admin.headers)
    return got.status_code == 404


async def _at_least(pool: asyncpg.Pool, source_id: str, synced: int) -> bool:
    return await _rows(pool, source_id, "synced") >= synced


async def leave(client: httpx.AsyncClient, admin: User, source: dict[str, Any]) -> None:
    """No schedule left behind for the sync workers of later tests: the
    source goes (its documents stay) when a sync worker next looks."""
    removed = await client.delete(
        f"/api/sources/{source['id']}", params={"keep_documents": "true"}, headers=admin.headers
    )
    assert removed.status_code == 202, removed.text


async def audit_of(client: httpx.AsyncClient, admin: User, action: str) -> list[Any]:
    found = await client.get(
        "/api/admin/audit", params={"action": action, "limit": 100}, headers=admin.headers
    )
    assert found.status_code == 200, found.text
    return list(found.json())


async def all_indexed(client: httpx.AsyncClient, admin: User, ids: list[str]) -> None:
    for doc_id in ids:
        doc = await wait_for_status(client, admin, doc_id, timeout=90)
        assert doc["status"] == "indexed", doc


async def test_add_change_rename_delete_and_unreadable_files(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    folder: Path,
    sync_worker: Component,
    workers: list[Component],
) -> None:
    admin = await new_user(client, "sync-admin")
    intro = "The harbour ferry leaves at seven every morning."
    (folder / "guide.md").write_text(
        sections(intro, "Tickets are sold at the kiosk.", "Bikes ride free.")
    )
    (folder / "notes").mkdir()
    (folder / "notes" / "plan.txt").write_text("The quarterly plan names three goals.")
    (folder / "old.txt").write_text("An old memo about the canteen menu.")
    (folder / "scratch.tmp").write_text("excluded by pattern")
    (folder / "large.txt").write_text("x" * 5000)
    (folder / "photo.xyz").write_bytes(b"not a document kind")
    locked = folder / "locked.txt"
    locked.write_text("Only readable once its permissions allow it.")
    locked.chmod(0)

    source = await add_source(
        client, admin, folder, exclude=["*.tmp"], max_bytes=4000, tags=["share"]
    )
    first = await next_run(client, admin, source["id"], None)
    assert first["last_run"]["outcome"] == "partial", first  # locked.txt failed
    assert first["last_run"]["counts"]["added"] == 3, first
    problems = {p["path"]: (p["status"], p["reason"]) for p in first["problems"]}
    assert problems["locked.txt"] == ("failed", "permission denied: the file cannot be read")
    assert problems["large.txt"][0] == "skipped" and "larger than 4,000" in problems["large.txt"][1]
    assert problems["photo.xyz"][0] == "skipped" and "unsupported" in problems["photo.xyz"][1]
    assert "scratch.tmp" not in problems
    docs = {row["path"]: row for row in await synced_documents(db, admin.tenant_id, folder.name)}
    assert sorted(docs) == ["guide.md", "notes/plan.txt", "old.txt"]
    await all_indexed(client, admin, [str(row["id"]) for row in docs.values()])
    guide = await client.get(f"/api/documents/{docs['guide.md']['id']}", headers=admin.headers)
    assert guide.json()["tags"] == ["share"], guide.text
    assert guide.json()["lane"] == "bulk" and guide.json()["visibility"] == "tenant"
    assert guide.json()["meta"] == {"source": folder.name, "path": "guide.md"}
    # Everyone in the tenant finds the shared documents.
    member = await member_of(client, db, admin.tenant_id)
    found = await client.post(
        "/api/search", headers=member.headers, json={"query": "When does the harbour ferry leave?"}
    )
    assert found.status_code == 200, found.text
    assert "guide.md" in {p["filename"] for p in found.json()["passages"]}, found.text

    # Between runs: a section changes, a file moves, one goes, one becomes readable.
    guide_id = str(docs["guide.md"]["id"])
    (folder / "guide.md").write_text(
        sections(intro, "Tickets are sold at the kiosk.", "Dogs ride free on weekdays.")
    )
    (folder / "archive").mkdir()
    (folder / "notes" / "plan.txt").rename(folder / "archive" / "plan-2026.txt")
    (folder / "old.txt").unlink()
    locked.chmod(0o644)
    second = await run_again(client, admin, source)
    counts = second["last_run"]["counts"]
    assert (counts["added"], counts["changed"], counts["renamed"], counts["deleted"]) == (
        1,
        1,
        1,
        1,
    ), second
    assert second["last_run"]["outcome"] == "ok", second
    after = {row["path"]: row for row in await synced_documents(db, admin.tenant_id, folder.name)}
    assert sorted(after) == ["archive/plan-2026.txt", "guide.md", "locked.txt"]
    # The same documents: a change keeps the id, a rename too.
    assert str(after["guide.md"]["id"]) == guide_id
    plan = after["archive/plan-2026.txt"]
    assert plan["id"] == docs["notes/plan.txt"]["id"] and plan["filename"] == "plan-2026.txt"
    gone = await client.get(f"/api/documents/{docs['old.txt']['id']}", headers=admin.headers)
    assert gone.status_code == 404
    await all_indexed(client, admin, [str(row["id"]) for row in after.values()])
    # The changed document was indexed again, embedding only the changed section.
    ingest = workers[0]
    assert chunks_stored(ingest, guide_id)[-1] == (1, 2), chunks_stored(ingest, guide_id)
    # The renamed one was not indexed again at all, and is found under its new name.
    assert len(chunks_stored(ingest, str(plan["id"]))) == 1
    by_name = await client.post(
        "/api/search",
        headers=admin.headers,
        json={"query": "quarterly plan goals", "filters": {"filename": "plan-2026.txt"}},
    )
    assert by_name.status_code == 200, by_name.text
    assert {p["filename"] for p in by_name.json()["passages"]} == {"plan-2026.txt"}

    # Each change is in the tenant's audit log, the source's owner as actor.
    synced = await audit_of(client, admin, "document.synced")
    assert sorted(e["detail"]["change"] for e in synced) == ["added"] * 4 + ["changed", "renamed"]
    assert {e["actor_id"] for e in synced} == {admin.id}
    [deleted] = await audit_of(client, admin, "document.deleted")
    assert deleted["detail"]["path"] == "old.txt"

    # Removing the source deletes its documents.
    removed = await client.delete(f"/api/sources/{source['id']}", headers=admin.headers)
    assert removed.status_code == 202 and removed.json()["state"] == "removing", removed.text
    await until(lambda: _gone(client, admin, source["id"]))
    assert await synced_documents(db, admin.tenant_id, folder.name) == []


async def test_a_source_shared_with_a_group_is_read_by_its_members_only(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    folder: Path,
    sync_worker: Component,
    workers: list[Component],
) -> None:
    admin = await new_user(client, "sync-groups")
    (folder / "payroll.md").write_text(sections("Payroll closes on the 24th of each month."))
    made = await client.post(
        "/api/admin/groups", headers=admin.headers, json={"name": f"payroll-{folder.name}"}
    )
    assert made.status_code == 201, made.text
    insider = await member_of(client, db, admin.tenant_id, "sync-insider")
    outsider = await member_of(client, db, admin.tenant_id, "sync-outsider")
    joined = await client.put(
        f"/api/admin/groups/{made.json()['id']}/members/{insider.id}", headers=admin.headers
    )
    assert joined.status_code == 204, joined.text
    # Groups go with visibility groups, and only names the tenant has.
    for wrong in (
        {"visibility": "tenant", "groups": [made.json()["name"]]},
        {"visibility": "groups", "groups": []},
        {"visibility": "groups", "groups": ["no-such-group"]},
    ):
        refused = await client.post(
            "/api/sources",
            headers=admin.headers,
            json={"name": f"x-{uuid.uuid4().hex[:6]}", "path": str(folder), **wrong},
        )
        assert refused.status_code == 400, (wrong, refused.text)
    source = await add_source(
        client, admin, folder, visibility="groups", groups=[made.json()["name"]]
    )
    assert source["groups"] == [made.json()["name"]], source
    try:
        first = await next_run(client, admin, source["id"], None)
        assert first["last_run"]["counts"]["added"] == 1, first
        [doc] = await synced_documents(db, admin.tenant_id, folder.name)
        await all_indexed(client, admin, [str(doc["id"])])
        question = {"query": "When does payroll close?"}
        for user, finds in ((insider, True), (outsider, False)):
            found = await client.post("/api/search", headers=user.headers, json=question)
            assert found.status_code == 200, found.text
            names = {p["filename"] for p in found.json()["passages"]}
            assert ("payroll.md" in names) is finds, (user.username, found.text)
            got = await client.get(f"/api/documents/{doc['id']}", headers=user.headers)
            assert got.status_code == (200 if finds else 404), got.text
    finally:
        await leave(client, admin, source)


async def test_a_killed_run_resumes_without_duplicates(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    folder: Path,
    sync_env: dict[str, str],
    log_dir: Path,
) -> None:
    files = 80
    for n in range(files):
        (folder / f"memo-{n:03}.txt").write_text(f"Memo number {n} about topic {n * 7}.")
    admin = await new_user(client, "sync-kill")
    first = start_sync_worker(sync_env, log_dir, f"sync-first-{uuid.uuid4().hex[:6]}")
    try:
        source = await add_source(client, admin, folder)
        await until(lambda: _at_least(db, source["id"], 5), every=0.01)
        first.kill()
    finally:
        first.stop()
    done_at_kill = await _rows(db, source["id"], "synced")
    assert done_at_kill < files, "the run finished before the kill: make it longer"
    second = start_sync_worker(sync_env, log_dir, f"sync-second-{uuid.uuid4().hex[:6]}")
    try:
        detail = await next_run(client, admin, source["id"], None, timeout=120)
        if detail["last_run"]["outcome"] == "interrupted":  # the killed one, closed
            detail = await next_run(client, admin, source["id"], detail["last_run"]["id"], 120)
    finally:
        second.stop()
    assert detail["last_run"]["outcome"] == "ok", detail
    assert detail["files"] == {"synced": files}, detail
    docs = await synced_documents(db, admin.tenant_id, folder.name)
    assert len(docs) == files, f"{len(docs)} documents for {files} files"
    assert len({row["path"] for row in docs}) == files
    outcomes = [r["outcome"] for r in reversed(detail["runs"])]
    assert outcomes == ["interrupted", "ok"], detail["runs"]
    assert "Sync run started" in second.log()
    await all_indexed(client, admin, [str(row["id"]) for row in docs])
    await leave(client, admin, source)


async def _rows(pool: asyncpg.Pool, source_id: str, status: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM source_files WHERE source_id=$1 AND status=$2",
        uuid.UUID(source_id),
        status,
    )
    return count


async def test_two_workers_never_run_one_source_at_once(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    folder: Path,
    sync_env: dict[str, str],
    log_dir: Path,
) -> None:
    files = 60
    for n in range(files):
        (folder / f"page-{n:03}.txt").write_text(f"Page {n} of the shared handbook.")
    admin = await new_user(client, "sync-two")
    tag = uuid.uuid4().hex[:6]
    pair = [start_sync_worker(sync_env, log_dir, f"sync-{side}-{tag}") for side in "ab"]
    try:
        source = await add_source(client, admin, folder, interval_seconds=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # Keep it due and its files changing, so both workers keep trying.
            for n in range(0, files, 7):
                os.utime(folder / f"page-{n:03}.txt")
            await client.post(f"/api/sources/{source['id']}/run", headers=admin.headers)
            await asyncio.sleep(0.3)
        await next_run(client, admin, source["id"], None)
        runs = await db.fetch(
            "SELECT worker, started_at, finished_at, outcome FROM sync_runs WHERE source_id=$1"
            " ORDER BY started_at",
            uuid.UUID(source["id"]),
        )
        # Removed, keeping its documents: a worker deletes the source only.
        await leave(client, admin, source)
        await until(lambda: _gone(client, admin, source["id"]))
    finally:
        for worker in pair:
            worker.stop()
    assert len(runs) >= 3, runs
    assert all(r["outcome"] in ("ok", "partial") for r in runs), runs
    for earlier, later in itertools.pairwise(runs):
        assert earlier["finished_at"] <= later["started_at"], f"runs overlap: {earlier} {later}"
    # Both workers took turns at it (each logged that it was ready, then ran it).
    assert all("Sync worker ready" in worker.log() for worker in pair)
    assert len({r["worker"] for r in runs}) == 2, runs
    docs = await synced_documents(db, admin.tenant_id, folder.name)
    assert len(docs) == files


async def test_rag_sync_commands(
    client: httpx.AsyncClient,
    db: asyncpg.Pool,
    folder: Path,
    sync_worker: Component,
    gateway: Component,
    tmp_path: Path,
) -> None:
    """`rag sync add/status/run/remove` as an admin uses them; a member is
    refused in one line."""
    home = tmp_path / "home"
    admin = await new_user(client, "sync-cli")
    assert sign_in(home, gateway, admin).returncode == 0
    (folder / "welcome.md").write_text("# Welcome\n\nThe office opens at eight.\n")
    (folder / "diagram.xyz").write_bytes(b"not a kind the workers parse")
    name = folder.name
    added = rag(home, "sync", "add", name, str(folder), "--tag", "cli", "--interval", "3600")
    assert added.returncode == 0, added.stderr
    assert f"added source {name}" in added.stdout
    source = (await client.get("/api/sources", headers=admin.headers)).json()[0]
    assert source["tags"] == ["cli"] and source["interval_seconds"] == 3600
    first = await next_run(client, admin, source["id"], None)

    listed = rag(home, "sync", "status")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout and "synced 1" in listed.stdout, listed.stdout
    detail = rag(home, "sync", "status", name)
    assert detail.returncode == 0, detail.stderr
    assert "skipped: diagram.xyz: unsupported file type" in detail.stdout, detail.stdout
    as_json = json.loads(rag(home, "sync", "status", name, "--json").stdout)
    assert as_json["last_run"]["counts"]["added"] == 1

    (folder / "welcome.md").write_text("# Welcome\n\nThe office opens at nine.\n")
    ran = rag(home, "sync", "run", name)
    assert ran.returncode == 0 and "is due now" in ran.stdout, ran.stderr
    second = await next_run(client, admin, source["id"], first["last_run"]["id"])
    assert second["last_run"]["counts"]["changed"] == 1, second

    member = await member_of(client, db, admin.tenant_id, "sync-cli-member")
    member_home = tmp_path / "member"
    assert sign_in(member_home, gateway, member).returncode == 0
    refused = rag(member_home, "sync", "add", "mine", str(folder))
    assert "administrator" in one_line(refused)

    removed = rag(home, "sync", "remove", name)
    assert removed.returncode == 0, removed.stderr
    await until(lambda: _gone(client, admin, source["id"]))
    assert await synced_documents(db, admin.tenant_id, name) == []
