"""The web page's folder-sync panel, in a real Chromium against the real
gateway and a real sync worker: an admin sees each source's state and last
run and, with the panel open, the files that were refused and why; a member
(whom the API refuses) does not see the panel at all."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import expect

from tests.browser.conftest import Watched
from tests.browser.test_web_chat import sign_in
from tests.support.api import PASSWORD, member_of
from tests.support.processes import Component, bound_by_permissions, start_worker

RUN_MS = 60_000


@pytest.fixture
def sync_worker(app_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    env = {**app_env, "SYNC_POLL_SECONDS": "0.3"}
    worker = start_worker(
        "sync", env, log_dir, name=f"sync-web-{uuid.uuid4().hex[:6]}", prefix=bound_by_permissions()
    )
    yield worker
    worker.stop()


async def test_the_panel_shows_sources_runs_and_refused_files_to_admins_only(
    web: Watched, client: httpx.AsyncClient, app_env: dict[str, str], sync_worker: Component
) -> None:
    page = web.page
    admin = await sign_in(page, client)
    folder = Path(json.loads(app_env["SYNC_ROOTS"])[0]) / f"web-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "menu.txt").write_text("The canteen serves soup on Mondays.")
    (folder / "scan.xyz").write_bytes(b"a kind of file the workers do not parse")
    body = {"name": folder.name, "path": str(folder), "interval_seconds": 3600}
    made = await client.post("/api/sources", headers=admin.headers, json=body)
    assert made.status_code == 201, made.text

    await page.reload()
    panel = page.locator("#sync-panel")
    await expect(panel).to_be_visible()
    await panel.locator("summary").click()
    source = page.locator("#sync-list > li").filter(has_text=folder.name)
    await expect(source.locator(".sync-run")).to_contain_text("added 1", timeout=RUN_MS)
    await expect(source.locator(".sync-run")).to_contain_text("skipped 1")
    await expect(source.locator(".sync-problems")).to_contain_text(
        "scan.xyz: skipped, unsupported file type", timeout=RUN_MS
    )
    assert web.errors == [], web.errors

    # A member of the same tenant: the API says 403, the page shows nothing.
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        member = await member_of(client, pool, admin.tenant_id, "web-member")
    finally:
        await pool.close()
    await page.click("#sign-out")
    await page.fill("#username", member.username)
    await page.fill("#password", PASSWORD)
    await page.click("#signin-submit")
    await expect(page.locator("#whoami")).to_have_text(member.username)
    await expect(page.locator("#document-list")).to_be_attached()
    await page.wait_for_timeout(1000)  # the page has asked GET /api/sources by now
    await expect(panel).to_be_hidden()
