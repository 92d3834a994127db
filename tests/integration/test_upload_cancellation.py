"""An upload whose request is cancelled (the client went away) after its
blob is being written, or is written, keeps nothing: the writes finish in a
task of their own and are then undone. The route runs in this process
against real PostgreSQL, Kafka and the suite's blob folder, so the test can
cancel it at a chosen step."""

from __future__ import annotations

import asyncio
import io
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from starlette.datastructures import Headers, UploadFile

from gateway.identity.users import User
from gateway.routes.documents import upload
from gateway.state import Gateway
from shared.config import Settings
from shared.runtime.clients import Clients, open_clients
from shared.storage import documents
from shared.storage.blobs import LocalBlobStore, StoredBlob

TEXT = b"Badges are worn at all times.\n" * 100


class SlowSource(io.BytesIO):
    """A file whose copy into the blob store takes a while: the first read
    says so, the next ones dawdle."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reading = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        if self.reading.is_set():
            threading.Event().wait(0.3)
        self.reading.set()
        return super().read(512)  # fewer bytes than asked for is allowed


class PausingBlobs(LocalBlobStore):
    """Signals once a blob is written, then takes a moment before returning."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written = asyncio.Event()

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob:
        stored = await super().put(key, source, max_bytes)
        self.written.set()
        await asyncio.sleep(0.5)
        return stored


@pytest.fixture(scope="module")
async def clients(app_env: dict[str, str]) -> AsyncIterator[Clients]:
    settings = Settings(**{name.lower(): value for name, value in app_env.items()})
    async with open_clients(settings, "test-upload-cancel", embedder=False) as opened:
        await opened.broker.start()
        yield opened


@pytest.fixture
async def user(clients: Clients) -> User:
    created = User(uuid.uuid4(), uuid.uuid4(), f"cancel-{uuid.uuid4().hex[:8]}", datetime.now(UTC))
    await clients.pool.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $2)", created.tenant_id, created.username
    )
    await clients.pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $2, $3, 'x')",
        created.id,
        created.tenant_id,
        created.username,
    )
    return created


def _gateway(clients: Clients) -> Gateway:
    # Only what the upload route uses; the rest is the HTTP side's.
    none = cast(Any, None)
    return Gateway(clients=clients, replies=none, tokens=none, lease=none, document_events=none)


def _file(source: BinaryIO) -> UploadFile:
    headers = Headers({"content-type": "text/plain"})
    return UploadFile(source, size=len(TEXT), filename="notes.txt", headers=headers)


def _blobs_of(clients: Clients, user: User) -> list[Path]:
    folder = clients.blobs.root / str(user.tenant_id)
    return sorted(folder.iterdir()) if folder.exists() else []


async def _rows_of(clients: Clients, user: User) -> list[documents.Document]:
    return await documents.list_for(clients.pool, user.tenant_id, user.id, limit=10, offset=0)


async def _cancel(gateway: Gateway, request: asyncio.Task[Any]) -> None:
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await gateway.drain()


async def test_an_upload_that_is_not_cancelled_is_stored(clients: Clients, user: User) -> None:
    out = await upload(_gateway(clients), user, "req-kept", _file(io.BytesIO(TEXT)))
    assert out.size_bytes == len(TEXT) and out.status == "queued"
    assert [p.name for p in _blobs_of(clients, user)] == [str(out.id)]
    assert [d.id for d in await _rows_of(clients, user)] == [out.id]


async def test_cancelled_while_the_blob_is_written(clients: Clients, user: User) -> None:
    gateway, source = _gateway(clients), SlowSource(TEXT)
    request = asyncio.create_task(upload(gateway, user, "req-cancel-1", _file(source)))
    await asyncio.to_thread(source.reading.wait, 10)

    await _cancel(gateway, request)

    assert _blobs_of(clients, user) == []  # neither the blob nor its .partial
    assert await _rows_of(clients, user) == []


async def test_cancelled_after_the_blob_is_written(
    clients: Clients, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    pausing = PausingBlobs(clients.blobs.root)
    monkeypatch.setattr(clients, "blobs", pausing)
    gateway = _gateway(clients)
    request = asyncio.create_task(upload(gateway, user, "req-cancel-2", _file(io.BytesIO(TEXT))))
    async with asyncio.timeout(10):
        await pausing.written.wait()
    assert len(_blobs_of(clients, user)) == 1

    await _cancel(gateway, request)

    assert _blobs_of(clients, user) == []
    assert await _rows_of(clients, user) == []
