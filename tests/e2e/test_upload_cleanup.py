"""An upload the client abandons mid-body leaves no blob and no row, and
the gateway goes on serving."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlparse

import httpx

from tests.support.api import new_user, upload
from tests.support.processes import Component

BOUNDARY = "cleanup-boundary"


def _blob_files(app_env: dict[str, str]) -> set[Path]:
    return {p for p in Path(app_env["BLOB_DIR"]).rglob("*") if p.is_file()}


def _head_and_half_a_body(base_url: str, token: str, size: int) -> bytes:
    """A multipart upload announcing ``size`` bytes of file, of which only
    the first half follows."""
    part = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    host = urlparse(base_url).netloc
    head = (
        f"POST /api/documents HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(part) + size + len(tail)}\r\n\r\n"
    ).encode()
    return head + part + b"x" * (size // 2)


async def test_an_upload_abandoned_mid_body_leaves_nothing(
    gateway: Component, client: httpx.AsyncClient, app_env: dict[str, str]
) -> None:
    user = await new_user(client)
    before = await asyncio.to_thread(_blob_files, app_env)
    url = urlparse(gateway.base_url or "")
    _reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(_head_and_half_a_body(gateway.base_url or "", user.token, 400_000))
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.transport.abort()  # a reset, as when the client dies

    await asyncio.sleep(1.5)
    assert (await client.get("/api/documents", headers=user.headers)).json() == []
    assert await asyncio.to_thread(_blob_files, app_env) == before
    # The gateway is unharmed: the next upload goes through.
    await upload(client, user, "notes.txt", b"Badges are worn at all times.\n")
