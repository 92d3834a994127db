"""Sessions end everywhere: an open ``GET /api/documents/events`` re-checks
the credential it was opened with every EVENTS_SESSION_CHECK_SECONDS and
ends with ``event: ended`` once it fails (a disabled user, a logout, a
revoked API key), never passing on another change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.test_document_events import DocStream, doc_stream
from tests.support.api import PASSWORD, User, member_of, new_user, upload
from tests.support.kafka import document_row, ingest_request_for, publish_ingest
from tests.support.processes import Component, start_gateway

CHECK_SECONDS = 1.0
# The check runs at the stream's next poll (every 0.5 s) once due, then
# two primary-key reads; the rest is the test's own scheduling.
ENDS_WITHIN = CHECK_SECONDS + 2.0


@pytest.fixture(scope="module")
def checking_gateway(
    app_env: dict[str, str], log_dir: Path, workers: list[Component]
) -> Iterator[Component]:
    """A gateway that re-checks every second, on the default stack's topics
    (so the session's ingest worker indexes what is uploaded to it)."""
    env = {**app_env, "EVENTS_SESSION_CHECK_SECONDS": str(CHECK_SECONDS)}
    gateway = start_gateway("gateway-session-check", env, log_dir)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
async def http(checking_gateway: Component) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=checking_gateway.base_url or "", timeout=30) as client:
        yield client


@pytest.fixture
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


async def _ends(stream: DocStream, since: float) -> float:
    """Seconds from ``since`` until the stream ended, with its reason."""
    await stream.until(lambda s: s.ended, timeout=ENDS_WITHIN + 5)
    took = time.monotonic() - since
    assert stream.end_reason == "session_ended", stream.end_reason
    return took


async def _refused(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    again = await client.get("/api/documents/events", headers=headers)
    assert again.status_code == 401, again.text


async def test_a_disabled_member_s_stream_ends_and_never_carries_a_new_shared_document(
    http: httpx.AsyncClient, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    admin = await new_user(http, "ev-admin")
    member = await member_of(http, db, admin.tenant_id, "ev-disabled")
    colleague = await member_of(http, db, admin.tenant_id, "ev-colleague")
    async with doc_stream(http, member) as theirs, doc_stream(http, admin) as control:
        # Open for several checks while the session is valid: nothing ends.
        await asyncio.sleep(3 * CHECK_SECONDS)
        assert not theirs.ended
        disabled = await http.post(f"/api/admin/users/{member.id}/disable", headers=admin.headers)
        assert disabled.status_code == 200, disabled.text
        disabled_at = time.monotonic()
        # The colleague uploads at once, and shares the document.
        doc_id = await upload(http, colleague, "rota.txt", b"Team holiday rota for spring.")
        ended_in = await _ends(theirs, disabled_at)
        shared = await http.patch(
            f"/api/documents/{doc_id}", headers=colleague.headers, json={"visibility": "tenant"}
        )
        assert shared.status_code == 200, shared.text
        # A change to the shared document: the rest of the tenant sees it.
        row = await document_row(app_env["DATABASE_URL"], doc_id)
        await publish_ingest(app_env, ingest_request_for(row, "ev-disabled-replay"))
        await control.until(lambda s: "indexed" in s.statuses(doc_id))
    assert ended_in < ENDS_WITHIN, ended_in
    assert theirs.of(doc_id) == []
    await _refused(http, member.headers)
    print(f"disabled member's stream ended {ended_in:.2f} s after the disable")


async def test_logout_ends_that_session_s_stream_only(http: httpx.AsyncClient) -> None:
    user = await new_user(http, "ev-logout")
    login = await http.post(
        "/api/auth/login", json={"username": user.username, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    other = User(user.username, login.json()["access_token"], user.id, user.tenant_id)
    async with doc_stream(http, user) as signed_out, doc_stream(http, other) as still_in:
        logout = await http.post("/api/auth/logout", headers=user.headers)
        assert logout.status_code == 204, logout.text
        ended_in = await _ends(signed_out, time.monotonic())
        # The user's other session keeps its stream, and its changes.
        doc_id = await upload(http, other, "notes.txt", b"Meeting notes for the week.")
        await still_in.until(lambda s: "indexed" in s.statuses(doc_id))
        assert not still_in.ended
    assert ended_in < ENDS_WITHIN, ended_in
    assert signed_out.of(doc_id) == []
    await _refused(http, user.headers)


async def test_a_stream_opened_with_an_api_key_ends_when_the_key_is_revoked(
    http: httpx.AsyncClient,
) -> None:
    user = await new_user(http, "ev-key")
    created = await http.post("/api/keys", headers=user.headers, json={"name": "feed"})
    assert created.status_code == 201, created.text
    key = User(user.username, created.json()["key"], user.id, user.tenant_id)
    async with doc_stream(http, key) as stream:
        await asyncio.sleep(2 * CHECK_SECONDS)
        assert not stream.ended
        revoked = await http.delete(f"/api/keys/{created.json()['id']}", headers=user.headers)
        assert revoked.status_code == 204, revoked.text
        ended_in = await _ends(stream, time.monotonic())
    assert ended_in < ENDS_WITHIN, ended_in
    await _refused(http, key.headers)
