"""Every door a document comes in by (an upload through the gateway, an
internal service's ``RagKafkaClient``) checks it with ``shared.intake``: the
same input gets the same answer through each, with the same words, and a
refused one leaves nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from gateway.http.errors import status_for
from ragstream.kafka_client import RagKafkaClient
from shared.config import Settings
from shared.errors import RagError
from tests.support.api import User, new_user, wait_for_status

ONE_MB = 1024 * 1024  # MAX_UPLOAD_MB in the test stack
# name, content type, body: each refused, for the reason the test names.
REFUSED = {
    "unsupported type": ("tool.exe", "application/octet-stream", b"MZ"),
    "name too long": ("n" * 252 + ".txt", "text/plain", b"long name"),
    "name of a path only": ("docs/", "text/plain", b"no name"),
    "content type too long": ("a.txt", "text/plain; x=" + "y" * 250, b"long type"),
    "empty": ("empty.txt", "text/plain", b""),
    "too large": ("big.txt", "text/plain", b"x" * (ONE_MB + 1)),
}


@pytest.fixture
async def rag(
    app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RagKafkaClient]:
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    async with RagKafkaClient(Settings()) as client:
        yield client


async def _filenames(app_env: dict[str, str], user: User) -> list[str]:
    conn = await asyncpg.connect(app_env["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT filename FROM documents WHERE user_id=$1 ORDER BY created_at",
            uuid.UUID(user.id),
        )
    finally:
        await conn.close()
    return [row["filename"] for row in rows]


async def _through_gateway(
    client: httpx.AsyncClient, user: User, name: str, kind: str, body: bytes
) -> tuple[int, str]:
    files = {"file": (name, body, kind)}
    response = await client.post("/api/documents", headers=user.headers, files=files)
    return response.status_code, response.json().get("detail", "")


async def _through_kafka(
    rag: RagKafkaClient, user: User, name: str, kind: str, body: bytes
) -> tuple[int, str]:
    tenant, me = uuid.UUID(user.tenant_id), uuid.UUID(user.id)
    try:
        await rag.submit_document(tenant, me, name, body, content_type=kind)
    except RagError as exc:
        return status_for(exc), exc.message
    return 202, ""


@pytest.mark.parametrize("case", list(REFUSED))
async def test_bad_input_is_refused_the_same_way_through_every_door(
    case: str, rag: RagKafkaClient, client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(client, "intake")
    name, kind, body = REFUSED[case]
    by_http = await _through_gateway(client, user, name, kind, body)
    by_kafka = await _through_kafka(rag, user, name, kind, body)
    assert by_http == by_kafka, case
    assert 400 <= by_http[0] < 500 and by_http[1], by_http
    assert await _filenames(app_env, user) == []


async def test_a_path_is_cut_to_its_name_through_every_door(
    rag: RagKafkaClient, client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(client, "intake-path")
    by_http = await client.post(
        "/api/documents",
        headers=user.headers,
        files={"file": ("C:\\fakepath\\notes.txt", b"from a browser", "text/plain")},
    )
    assert by_http.status_code == 202, by_http.text
    tenant, me = uuid.UUID(user.tenant_id), uuid.UUID(user.id)
    by_kafka = await rag.submit_document(tenant, me, "exports/2026/notes.txt", b"from a service")
    assert by_http.json()["filename"] == "notes.txt"
    assert await _filenames(app_env, user) == ["notes.txt", "notes.txt"]
    for doc_id in (by_http.json()["id"], str(by_kafka.document_id)):
        assert (await wait_for_status(client, user, doc_id))["status"] == "indexed"
