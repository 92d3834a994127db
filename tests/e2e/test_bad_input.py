"""Bad input gets a clear 4xx with a reason, never a 500."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.api import User, new_user


@pytest.fixture
async def user(client: httpx.AsyncClient) -> User:
    return await new_user(client)


async def test_missing_file(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/api/documents", headers=user.headers, data={"x": "y"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


async def test_empty_file(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/api/documents", headers=user.headers, files={"file": ("empty.txt", b"")}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "the file is empty"}
    assert (await client.get("/api/documents", headers=user.headers)).json() == []


async def test_an_overlong_content_type_is_refused_before_anything_is_stored(
    client: httpx.AsyncClient, user: User, app_env: dict[str, str]
) -> None:
    def blobs() -> set[Path]:
        return set(Path(app_env["BLOB_DIR"]).rglob("*"))

    before = await asyncio.to_thread(blobs)
    response = await client.post(
        "/api/documents",
        headers=user.headers,
        files={"file": ("notes.txt", b"some text", "text/plain; x=" + "a" * 300)},
    )
    assert response.status_code == 400, response.text
    assert "Content-Type" in response.json()["detail"]
    assert (await client.get("/api/documents", headers=user.headers)).json() == []
    assert await asyncio.to_thread(blobs) == before


async def test_unsupported_file_type(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/api/documents", headers=user.headers, files={"file": ("deck.pptx", b"PK\x03\x04")}
    )
    assert response.status_code == 415
    assert "unsupported file type" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"message": ""}',
        b'{"message": "hi", "stream_timeout": 0}',
        b'{"message": "hi", "stream_timeout": 100000}',
        b'{"message": "hi", "top_k": 0}',
        b'{"message": "hi", "conversation_id": "nope"}',
        b'{"message": "hi", "surprise": 1}',
        # PostgreSQL cannot store NUL; UTF-8 cannot carry an unpaired surrogate.
        b'{"message": "what is \\u0000 in a question?"}',
        b'{"message": "half a pair \\udbe3 here"}',
    ],
    ids=[
        "malformed",
        "not-object",
        "empty-message",
        "zero-timeout",
        "huge-timeout",
        "zero-top-k",
        "bad-conversation",
        "unknown-field",
        "nul-character",
        "lone-surrogate",
    ],
)
async def test_malformed_chat_requests(client: httpx.AsyncClient, user: User, body: bytes) -> None:
    for path in ("/api/chat/stream", "/api/chat"):
        response = await client.post(
            path, headers={**user.headers, "Content-Type": "application/json"}, content=body
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"], response.text


async def test_a_surrogate_pair_is_a_character_not_an_error(
    client: httpx.AsyncClient, user: User
) -> None:
    # "\ud879\udfea" in JSON is one character (U+2E7EA), whatever a fuzzer sends with it.
    body = b'{"message": "\\ud879\\udfea? which page mentions it"}'
    response = await client.post(
        "/api/chat", headers={**user.headers, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 200, response.text


async def test_malformed_login_does_not_echo_the_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login", json={"username": "x", "password": "hunter2-secret"}
    )
    assert response.status_code == 422
    assert "hunter2-secret" not in response.text


async def test_malformed_document_id(client: httpx.AsyncClient, user: User) -> None:
    response = await client.get("/api/documents/not-a-uuid", headers=user.headers)
    assert response.status_code == 422


async def test_unknown_document_id(client: httpx.AsyncClient, user: User) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, f"/api/documents/{uuid.uuid4()}", headers=user.headers
        )
        assert response.status_code == 404
        assert response.json() == {"detail": "document not found"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dXNlcjpwdw=="}],
    ids=["missing", "bad", "wrong-scheme"],
)
async def test_missing_or_bad_token(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/api/auth/verify"),
        ("GET", "/api/documents"),
        ("POST", "/api/chat/stream"),
        ("GET", "/api/chat/history"),
    ]:
        response = await client.request(method, path, headers=headers, json={"message": "hi"})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_verify_says_invalid_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/auth/verify", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


async def test_duplicate_username_and_wrong_password(client: httpx.AsyncClient, user: User) -> None:
    body = {"username": user.username, "password": "a-long-password"}
    assert (await client.post("/api/auth/register", json=body)).status_code == 409
    wrong = await client.post(
        "/api/auth/login", json={"username": user.username, "password": "wrong-password"}
    )
    assert wrong.status_code == 401
    unknown = await client.post(
        "/api/auth/login", json={"username": "nobody-here", "password": "whatever-pass"}
    )
    assert unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_runbook_curl_without_content_type_works(
    client: httpx.AsyncClient, user: User
) -> None:
    # curl -d sends application/x-www-form-urlencoded; the runbook relies on it.
    response = await client.post(
        "/api/chat",
        headers={**user.headers, "Content-Type": "application/x-www-form-urlencoded"},
        content=b'{"message": "test", "stream_timeout": 60}',
        timeout=60,
    )
    assert response.status_code == 200, response.text


async def test_too_large_upload(client: httpx.AsyncClient, user: User) -> None:
    # The test gateway runs with MAX_UPLOAD_MB=1.
    big = b"word " * (1024 * 1024 // 5 + 100)
    response = await client.post(
        "/api/documents", headers=user.headers, files={"file": ("big.txt", big)}
    )
    assert response.status_code == 413
    assert "larger than 1 MB" in response.json()["detail"]
    assert (await client.get("/api/documents", headers=user.headers)).json() == []
