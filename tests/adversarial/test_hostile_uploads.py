"""Hostile uploads: refused with a 4xx and a reason, and nothing of them left
in the blob store or the database; names never steer where a file goes."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.adversarial.conftest import all_files, tenant_blobs, tenant_documents
from tests.support.api import User, new_user
from tests.support.processes import Component

MB = 1024 * 1024
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56
PE = b"MZ\x90\x00" + b"\x00" * 60


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return out.getvalue()


@pytest.fixture
async def uploader(client: httpx.AsyncClient) -> User:
    """A fresh tenant: anything stored under it came from this test."""
    return await new_user(client, "uploader")


async def assert_nothing_stored(
    db: asyncpg.Pool, app_env: dict[str, str], actor: User, label: str
) -> None:
    assert await tenant_documents(db, actor.tenant_id) == 0, label
    assert await asyncio.to_thread(tenant_blobs, app_env, actor.tenant_id) == [], label


def multipart(
    filename: bytes, content: bytes, content_type: bytes = b"text/plain"
) -> tuple[bytes, str]:
    """A form built by hand: httpx would escape the very bytes under test."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n',
            b"Content-Type: " + content_type + b"\r\n\r\n",
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("filename", "content", "status"),
    [
        ("tool.exe", PE, 415),
        ("tool", ELF, 415),
        ("archive.zip", _zip(), 415),
        ("../../etc/passwd", b"root:x:0:0", 415),
        ("script.sh", b"#!/bin/sh\nrm -rf /\n", 415),
        ("empty.txt", b"", 400),
        ("x" * 300 + ".txt", b"text", 400),
    ],
    ids=["exe", "elf", "zip", "passwd", "shell", "empty", "long-name"],
)
async def test_a_bad_file_is_refused_and_nothing_kept(
    client: httpx.AsyncClient,
    uploader: User,
    db: asyncpg.Pool,
    app_env: dict[str, str],
    filename: str,
    content: bytes,
    status: int,
) -> None:
    response = await client.post(
        "/api/documents", headers=uploader.headers, files={"file": (filename, content)}
    )
    assert response.status_code == status, response.text
    assert response.json()["detail"], response.text
    await assert_nothing_stored(db, app_env, uploader, filename)


@pytest.mark.parametrize(
    "filename",
    [b"evil\x00.txt", b"a\x00../../etc/passwd.txt", b"bell\x07.txt", b"line\nbreak.txt"],
    ids=["nul", "nul-traversal", "control", "newline"],
)
async def test_a_name_with_control_characters_is_refused(
    client: httpx.AsyncClient,
    uploader: User,
    db: asyncpg.Pool,
    app_env: dict[str, str],
    filename: bytes,
) -> None:
    body, content_type = multipart(filename, b"some text")
    response = await client.post(
        "/api/documents",
        headers={**uploader.headers, "Content-Type": content_type},
        content=body,
    )
    assert 400 <= response.status_code < 500, response.text
    await assert_nothing_stored(db, app_env, uploader, repr(filename))


TRAVERSALS = [
    b"../../etc/passwd.txt",
    b"..\\..\\x.txt",
    b"/etc/cron.d/evil.txt",
    b"C:\\Windows\\System32\\evil.txt",
    b"....//....//evil.txt",
    b"%2e%2e%2f%2e%2e%2fevil.txt",
]


@pytest.mark.parametrize("filename", TRAVERSALS, ids=lambda n: n.decode())
async def test_a_path_in_the_name_never_steers_where_the_file_goes(
    client: httpx.AsyncClient,
    uploader: User,
    db: asyncpg.Pool,
    app_env: dict[str, str],
    filename: bytes,
) -> None:
    """Browsers may send a whole path as the name (old IE sends C:\\...), so
    a path is cut to its last part, or the upload refused; either way no
    file appears outside the blob store, and the stored name has no path."""
    root = Path(app_env["BLOB_DIR"])
    beside = await asyncio.to_thread(_names, root.parent)
    body, content_type = multipart(filename, b"a harmless note")
    response = await client.post(
        "/api/documents", headers={**uploader.headers, "Content-Type": content_type}, content=body
    )
    assert response.status_code in (202, 400, 415), response.text
    assert await asyncio.to_thread(_names, root.parent) == beside
    if response.status_code != 202:
        await assert_nothing_stored(db, app_env, uploader, repr(filename))
        return
    stored = response.json()["filename"]
    assert "/" not in stored and "\\" not in stored and stored not in ("..", "."), stored
    # The blob is named by the server: the document's id under its tenant.
    blobs = await asyncio.to_thread(tenant_blobs, app_env, uploader.tenant_id)
    assert [b.name.removesuffix(".partial") for b in blobs] == [response.json()["id"]]
    named = await asyncio.to_thread(all_files, root)
    assert not [p for p in named if "evil" in p.name or "passwd" in p.name], named


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"file": "../../etc/passwd"}'),
        ("text/plain", b"just some text"),
        ("application/x-www-form-urlencoded", b"file=hello"),
        ("multipart/form-data", b"--x\r\n\r\nno boundary declared\r\n--x--\r\n"),
        ("multipart/form-data; boundary=abc", b"not a multipart body at all"),
        ("application/octet-stream", ELF),
    ],
    ids=["json", "text", "form", "no-boundary", "bad-multipart", "octet-stream"],
)
async def test_a_body_that_is_not_a_file_upload_is_refused(
    client: httpx.AsyncClient,
    uploader: User,
    db: asyncpg.Pool,
    app_env: dict[str, str],
    content_type: str,
    body: bytes,
) -> None:
    response = await client.post(
        "/api/documents",
        headers={**uploader.headers, "Content-Type": content_type},
        content=body,
    )
    assert response.status_code in (400, 415, 422), response.text
    await assert_nothing_stored(db, app_env, uploader, content_type)


async def test_an_oversized_file_is_refused_after_auth(
    client: httpx.AsyncClient, uploader: User, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    limit = int(app_env["MAX_UPLOAD_MB"]) * MB
    response = await client.post(
        "/api/documents",
        headers=uploader.headers,
        files={"file": ("big.txt", b"a" * (limit + 1), "text/plain")},
    )
    assert response.status_code == 413, response.text
    await assert_nothing_stored(db, app_env, uploader, "oversized")


async def first_answer(base_url: str, headers: dict[str, str], declared: int) -> bytes | None:
    """Declare a ``declared``-byte upload, send none of its body, and read
    the status line the server answers with within a few seconds, if any:
    a server that reads the body before deciding never answers."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    lines = [
        "POST /api/documents HTTP/1.1",
        f"Host: {url.netloc}",
        "Content-Type: multipart/form-data; boundary=BOUNDARY",
        f"Content-Length: {declared}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.readline()
    except TimeoutError:
        return None
    finally:
        writer.close()


async def test_an_anonymous_upload_is_refused_before_its_body_is_read(
    gateway: Component,
) -> None:
    """Identity first: a stranger cannot make the gateway read (and buffer
    to disk) megabytes of body. Needs the body-size/auth-first middleware."""
    status = await first_answer(gateway.base_url or "", {}, declared=int(0.5 * MB))
    assert status is not None, "the gateway waited for the whole body of an anonymous upload"
    # Half a megabyte, within the upload limit: only checking identity first
    # can make the gateway answer before the body arrives.
    assert status.split()[1] == b"401", status


async def test_an_oversized_upload_is_refused_from_its_declared_length(
    gateway: Component, uploader: User, db: asyncpg.Pool, app_env: dict[str, str]
) -> None:
    """A Content-Length over the route's bound is a 413 before a byte of the
    body is read. Needs the body-size middleware."""
    declared = (int(app_env["MAX_UPLOAD_MB"]) + 2) * MB
    status = await first_answer(gateway.base_url or "", uploader.headers, declared=declared)
    assert status is not None, "the gateway waited for the whole body of an oversized upload"
    assert status.split()[1] == b"413", status
    await assert_nothing_stored(db, app_env, uploader, "declared oversize")


async def test_an_oversized_json_body_is_refused(
    client: httpx.AsyncClient, uploader: User, app_env: dict[str, str]
) -> None:
    """JSON routes have a bound of their own (MAX_JSON_BODY_KB, 64 KiB by
    default), far below the upload limit. Needs the body-size middleware."""
    message = "a" * (256 * 1024)
    response = await client.post(
        "/api/chat", headers=uploader.headers, json={"message": message}, timeout=30
    )
    assert response.status_code == 413, response.text
    login = await client.post(
        "/api/auth/login", json={"username": "x" * (256 * 1024), "password": "p" * 10}
    )
    assert login.status_code == 413, login.text
