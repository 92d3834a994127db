"""Documents are private to their owner until shared with the owner's tenant.

Tenant A has a1 (the owner) and a2; tenant B has b1. A filter on the tenant
alone lets a2 read a1's private document; a filter on the user alone keeps
a2 from a1's shared one; a filter on visibility without the tenant lets b1
read it. Each of those fails a test here, for the listing, the reads, the
writes and both retrieval modes (dense: Chroma; lexical: PostgreSQL).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import api
from tests.support.api import User, answer_text, new_user, stream_chat, upload, wait_for_status
from tests.support.processes import Component, start_gateway

MODES = ("dense", "lexical")


@pytest.fixture(scope="module")
async def db(app_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(app_env["DATABASE_URL"], min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


async def token_tenant(client: httpx.AsyncClient, user: User) -> str:
    """The tenant the gateway reads from ``user``'s token."""
    me = await client.get("/api/auth/verify", headers=user.headers)
    assert me.status_code == 200, me.text
    return str(me.json()["tenant_id"])


@dataclass
class Tenants:
    a1: User
    a2: User
    b1: User


@pytest.fixture
async def tenants(client: httpx.AsyncClient, db: asyncpg.Pool) -> Tenants:
    a1 = await new_user(client, "a1")  # the admin of a tenant of their own
    a2 = await api.member_of(client, db, a1.tenant_id, "a2")  # as an operator would
    b1 = await new_user(client, "b1")
    a1_tenant, a2_tenant, b1_tenant = [await token_tenant(client, u) for u in (a1, a2, b1)]
    assert a1_tenant == a2_tenant != b1_tenant
    return Tenants(a1, a2, b1)


@dataclass(frozen=True)
class Secret:
    """A document holding a code and a number found nowhere else."""

    code: str
    number: str

    @classmethod
    def new(cls) -> Secret:
        digits = f"{uuid.uuid4().int % 10**12:012d}"
        number = "-".join(digits[i : i + 4] for i in (0, 4, 8))
        return cls(f"KESTREL-{uuid.uuid4().hex[:8].upper()}", number)

    @property
    def text(self) -> bytes:
        return f"The launch code for project {self.code} is {self.number}.".encode()

    @property
    def question(self) -> str:
        """The document's exact text, as a question."""
        return f"What is the launch code for project {self.code}? {self.number}"


async def visibility(
    client: httpx.AsyncClient, member: User, doc_id: str, value: str
) -> httpx.Response:
    return await client.patch(
        f"/api/documents/{doc_id}", headers=member.headers, json={"visibility": value}
    )


async def listed(client: httpx.AsyncClient, member: User) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/documents", headers=member.headers)
    assert response.status_code == 200, response.text
    return {d["id"]: d for d in response.json()}


async def cites(
    client: httpx.AsyncClient, member: User, doc_id: str, secret: Secret, mode: str
) -> bool:
    """Whether ``member``'s chat, asked for the document's exact text, cites
    it; when it does not, the answer must not quote it either."""
    body = {"message": secret.question, "retrieval": mode}
    response, events = await stream_chat(client, member, body)
    assert response.status_code == 200, response.text
    [sources] = [e.data for e in events if e.event == "sources"]
    cited = any(s["document_id"] == doc_id for s in sources)
    answer = answer_text(events)
    if not cited:
        assert secret.code not in answer and secret.number not in answer, answer
    return cited


async def assert_hidden(
    client: httpx.AsyncClient, member: User, doc_id: str, secret: Secret
) -> None:
    """``member`` cannot tell the document exists."""
    assert doc_id not in await listed(client, member)
    path = f"/api/documents/{doc_id}"
    for method in ("GET", "DELETE"):
        response = await client.request(method, path, headers=member.headers)
        assert response.status_code == 404, (method, response.text)
    for value in ("tenant", "private"):
        assert (await visibility(client, member, doc_id, value)).status_code == 404
    for mode in MODES:
        assert not await cites(client, member, doc_id, secret, mode), mode


async def audit_actions(db: asyncpg.Pool, doc_id: str) -> list[str]:
    rows = await db.fetch("SELECT action FROM audit_log WHERE target = $1 ORDER BY id", str(doc_id))
    return [row["action"] for row in rows]


async def test_private_then_shared_then_private_again(
    client: httpx.AsyncClient, tenants: Tenants, db: asyncpg.Pool
) -> None:
    a1, a2, b1 = tenants.a1, tenants.a2, tenants.b1
    secret = Secret.new()
    doc_id = await upload(client, a1, "launch.txt", secret.text)
    assert (await wait_for_status(client, a1, doc_id))["status"] == "indexed"
    mine = (await listed(client, a1))[doc_id]
    assert (mine["visibility"], mine["mine"]) == ("private", True)
    for mode in MODES:
        assert await cites(client, a1, doc_id, secret, mode), mode

    # Private: nobody else can tell it exists.
    await assert_hidden(client, a2, doc_id, secret)
    await assert_hidden(client, b1, doc_id, secret)

    shared = await visibility(client, a1, doc_id, "tenant")
    assert shared.status_code == 200, shared.text
    assert (shared.json()["visibility"], shared.json()["mine"]) == ("tenant", True)

    # Shared: a2 lists, reads and searches it, but may not change or delete it.
    seen = (await listed(client, a2))[doc_id]
    assert (seen["visibility"], seen["mine"]) == ("tenant", False)
    got = await client.get(f"/api/documents/{doc_id}", headers=a2.headers)
    assert got.status_code == 200 and got.json()["mine"] is False
    for mode in MODES:
        assert await cites(client, a2, doc_id, secret, mode), mode
    response = await client.delete(f"/api/documents/{doc_id}", headers=a2.headers)
    assert response.status_code == 403, response.text
    assert (await visibility(client, a2, doc_id, "private")).status_code == 403
    assert (await visibility(client, a2, doc_id, "tenant")).status_code == 403
    assert (await client.get(f"/api/documents/{doc_id}", headers=a1.headers)).status_code == 200
    # Another tenant still cannot tell it exists.
    await assert_hidden(client, b1, doc_id, secret)

    unshared = await visibility(client, a1, doc_id, "private")
    assert unshared.status_code == 200 and unshared.json()["visibility"] == "private"
    await assert_hidden(client, a2, doc_id, secret)
    for mode in MODES:
        assert await cites(client, a1, doc_id, secret, mode), mode

    deleted = await client.delete(f"/api/documents/{doc_id}", headers=a1.headers)
    assert deleted.status_code == 204, deleted.text
    assert await audit_actions(db, doc_id) == [
        "document.uploaded",
        "document.shared",
        "document.unshared",
        "document.deleted",
    ]


async def test_sharing_before_indexing_reaches_every_chunk(
    client: httpx.AsyncClient, tenants: Tenants, db: asyncpg.Pool
) -> None:
    """The ingest worker writes the row's visibility into the chunks, read
    as it stores them: a document shared (or shared and unshared again)
    while queued is indexed with the visibility it has by then."""
    a1, a2 = tenants.a1, tenants.a2
    shared, back = Secret.new(), Secret.new()
    shared_id = await upload(client, a1, "shared.txt", shared.text)
    assert (await visibility(client, a1, shared_id, "tenant")).status_code == 200
    back_id = await upload(client, a1, "back.txt", back.text)
    assert (await visibility(client, a1, back_id, "tenant")).status_code == 200
    assert (await visibility(client, a1, back_id, "private")).status_code == 200
    # Repeating a visibility changes nothing, and is not audited again.
    assert (await visibility(client, a1, back_id, "private")).status_code == 200

    for doc_id in (shared_id, back_id):
        assert (await wait_for_status(client, a1, doc_id))["status"] == "indexed"
    for mode in MODES:
        assert await cites(client, a2, shared_id, shared, mode), mode
        assert not await cites(client, a2, back_id, back, mode), mode
        assert not await cites(client, tenants.b1, shared_id, shared, mode), mode
    assert await audit_actions(db, back_id) == [
        "document.uploaded",
        "document.shared",
        "document.unshared",
    ]


@pytest.fixture(scope="module")
def quota_gateway(app_env: dict[str, str], log_dir: Path) -> Iterator[Component]:
    # Its uploads go where no worker reads: these tests need rows and blobs,
    # not indexing, and a 700 kB document (1,030 chunks) would hold up the
    # shared ingest worker's partitions for the tests after them.
    env = {
        **app_env,
        "TENANT_MAX_DOCUMENTS": "2",
        "TENANT_MAX_MB": "1",
        "KAFKA_TOPIC_PREFIX": app_env["KAFKA_TOPIC_PREFIX"] + "-quota",
    }
    component = start_gateway("gateway-quota", env, log_dir)
    yield component
    component.stop()


@pytest.fixture
async def quota_client(quota_gateway: Component) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quota_gateway.base_url or "", timeout=30) as http:
        yield http


async def tenant_rows(db: asyncpg.Pool, member: User) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM documents WHERE tenant_id = $1", uuid.UUID(member.tenant_id)
    )
    return count


def tenant_blobs(app_env: dict[str, str], member: User) -> int:
    folder = Path(app_env["BLOB_DIR"]) / member.tenant_id
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


async def refused(client: httpx.AsyncClient, member: User, content: bytes, limit: str) -> None:
    response = await client.post(
        "/api/documents",
        headers=member.headers,
        files={"file": ("over.txt", content, "text/plain")},
    )
    assert response.status_code == 403, response.text
    assert limit in response.json()["detail"]


async def test_the_document_count_is_per_tenant(
    quota_client: httpx.AsyncClient, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    owner = await new_user(quota_client, "quota-n")
    colleague = await api.member_of(quota_client, db, owner.tenant_id, "quota-n2")
    first = await upload(quota_client, owner, "one.txt", b"The first note.")
    await upload(quota_client, colleague, "two.txt", b"The second note.")

    # The tenant's third document, whoever uploads it.
    for member in (owner, colleague):
        await refused(quota_client, member, b"A third note.", "TENANT_MAX_DOCUMENTS")
    assert await tenant_rows(db, owner) == 2
    assert tenant_blobs(app_env, owner) == 2
    # Another tenant has a quota of its own.
    other = await new_user(quota_client, "quota-other")
    await upload(quota_client, other, "one.txt", b"Another tenant's note.")

    # Deleting frees the place.
    response = await quota_client.delete(f"/api/documents/{first}", headers=owner.headers)
    assert response.status_code == 204, response.text
    await upload(quota_client, owner, "three.txt", b"A third note.")
    assert await tenant_rows(db, owner) == 2


async def test_the_bytes_are_per_tenant(
    quota_client: httpx.AsyncClient, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    owner = await new_user(quota_client, "quota-mb")
    await upload(quota_client, owner, "big.txt", b"word " * 140_000)  # 700 kB of 1 MB

    await refused(quota_client, owner, b"word " * 80_000, "TENANT_MAX_MB")  # 400 kB more
    assert await tenant_rows(db, owner) == 1
    assert tenant_blobs(app_env, owner) == 1
    # What still fits is accepted.
    await upload(quota_client, owner, "small.txt", b"word " * 40_000)
    assert await tenant_rows(db, owner) == 2


async def test_concurrent_uploads_cannot_pass_the_quota_together(
    quota_client: httpx.AsyncClient, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    """All pass the first check at once; the second, under a per-tenant lock
    with the row's insert, lets two through and removes the others' blobs."""
    owner = await new_user(quota_client, "quota-race")

    async def attempt(n: int) -> int:
        response = await quota_client.post(
            "/api/documents",
            headers=owner.headers,
            files={"file": (f"note-{n}.txt", f"Note number {n}.".encode(), "text/plain")},
        )
        return response.status_code

    statuses = await asyncio.gather(*(attempt(n) for n in range(6)))
    assert sorted(statuses) == [202, 202, 403, 403, 403, 403]
    assert await tenant_rows(db, owner) == 2
    assert tenant_blobs(app_env, owner) == 2
