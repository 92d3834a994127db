"""Uploads cannot fill a gateway's disk: before a byte of a body is read, the
credential gets its full check, the user takes one of MAX_CONCURRENT_UPLOADS
slots (429) and the body's size is reserved in the process's UPLOAD_SPOOL_MB
(503 with Retry-After). Tested with uploads that trickle in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.api import User, new_user
from tests.support.processes import Component, side_stack

BOUNDARY = "trickle-boundary"


@pytest.fixture(scope="module")
def gateway(
    app_env: dict[str, str], log_dir: Path, workers: list[Component]
) -> Iterator[Component]:
    settings = {"MAX_CONCURRENT_UPLOADS": "2", "UPLOAD_SPOOL_MB": "1"}
    with side_stack(app_env, log_dir, "uploads", **settings) as (gateway, _):
        yield gateway


def _head(gateway: Component, user: User, size: int) -> bytes:
    host = urlsplit(gateway.base_url or "").netloc
    return (
        f"POST /api/documents HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {user.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()


def _body(filename: str, text: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
            f"\r\nContent-Type: text/plain\r\n\r\n"
        ).encode()
        + text
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@asynccontextmanager
async def trickling(gateway: Component, user: User, size: int) -> AsyncIterator[None]:
    """An upload that has sent its headers and a first few bytes, and holds."""
    url = urlsplit(gateway.base_url or "")
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(_head(gateway, user, size) + b"--" + BOUNDARY.encode())
    await writer.drain()
    try:
        # Nothing may answer an upload that is still arriving.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.5)
        yield
    finally:
        writer.close()


async def _refused_at_once(gateway: Component, user: User, size: int) -> tuple[int, bytes]:
    """The status and headers of an upload that sends only its headers: an
    answer can only come before its body is read."""
    url = urlsplit(gateway.base_url or "")
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(_head(gateway, user, size))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), head.lower()


async def _upload(http: httpx.AsyncClient, user: User, name: str, size: int) -> httpx.Response:
    files = {"file": (name, b"x" * size, "text/plain")}
    return await http.post("/api/documents", headers=user.headers, files=files)


@pytest.fixture
async def http(gateway: Component) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url or "", timeout=30) as client:
        yield client


async def test_a_users_concurrent_uploads_are_capped_before_their_bodies_are_read(
    client: httpx.AsyncClient, http: httpx.AsyncClient, gateway: Component
) -> None:
    user, other = await new_user(client), await new_user(client)
    async with trickling(gateway, user, 100_000), trickling(gateway, user, 100_000):
        status, head = await _refused_at_once(gateway, user, 100_000)
        assert status == 429 and b"retry-after: 5" in head
        # Another user is not held up by this one's uploads.
        assert (await _upload(http, other, "other.txt", 1000)).status_code == 202
    # Slots are given back when the uploads end, however they end.
    await asyncio.sleep(0.5)
    assert (await _upload(http, user, "after.txt", 1000)).status_code == 202


async def test_a_full_spool_answers_503_with_retry_after_until_it_drains(
    client: httpx.AsyncClient, http: httpx.AsyncClient, gateway: Component
) -> None:
    first, second = await new_user(client), await new_user(client)
    async with trickling(gateway, first, 800_000):
        status, head = await _refused_at_once(gateway, second, 400_000)
        assert status == 503 and b"retry-after: 5" in head
        assert (await _upload(http, second, "small.txt", 100_000)).status_code == 202
    await asyncio.sleep(0.5)
    assert (await _upload(http, second, "retried.txt", 400_000)).status_code == 202


async def test_a_logged_out_session_cannot_make_the_gateway_read_a_body(
    client: httpx.AsyncClient, gateway: Component
) -> None:
    user = await new_user(client)
    assert (await client.post("/api/auth/logout", headers=user.headers)).status_code == 204
    # The token's signature is still good: only the full check refuses it.
    status, head = await _refused_at_once(gateway, user, 500_000)
    assert status == 401 and b"www-authenticate: bearer" in head
