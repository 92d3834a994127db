"""The blob store's contract, for both stores: a folder (``LocalBlobStore``)
and an S3 bucket (``S3BlobStore``) on a real S3-protocol server (s3s-fs,
started by the localstack code as a process, ``s3_server``), each test on a
fresh root (a folder; a prefix of the bucket).

What the gateway, the ingest workers and the reconciler rely on: a blob is
whole or absent, a refused or failed put leaves nothing, size and sha256
are those of the bytes, listing is paged and lists only blobs, the marker is
created atomically. Then what only S3 has: multipart uploads one part at a
time (aborted when refused), server-side encryption on every write, and an
unreachable server as ``Unavailable``.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ragstream.localstack import INFRA_VARS, LocalStack, StackConfig
from ragstream.localstack.ports import free_port
from ragstream.localstack.s3 import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3Service
from shared.config import Settings
from shared.errors import NotFound, PayloadTooLarge, Unavailable
from shared.runtime.clients import build_blob_store
from shared.storage.blobs import MARKER, BlobInfo, BlobStore, LocalBlobStore, blob_key
from shared.storage.s3_blobs import S3BlobStore

MB = 1024 * 1024


def s3_settings(server: S3Service, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "blob_store": "s3",
        "blob_s3_bucket": BUCKET,
        "blob_s3_prefix": f"contract-{uuid.uuid4().hex[:12]}",
        "blob_s3_endpoint_url": server.url,
        "blob_s3_region": REGION,
        "blob_s3_access_key_id": ACCESS_KEY,
        "blob_s3_secret_access_key": SECRET_KEY,
        "blob_s3_part_mb": 5,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return build_blob_store(Settings(blob_store="local", blob_dir=tmp_path / "blobs"))
    server: S3Service = request.getfixturevalue("s3_server")
    return build_blob_store(s3_settings(server))


def _key() -> str:
    return blob_key(uuid.uuid4(), uuid.uuid4())


async def _listed(store: BlobStore, size: int = 1000) -> list[BlobInfo]:
    return [info async for page in store.pages(size) for info in page]


def _foreign(store: BlobStore, name: str) -> None:
    """Something in the root that is not a blob of ours."""
    if isinstance(store, LocalBlobStore):
        (store.root / name).parent.mkdir(parents=True, exist_ok=True)
        (store.root / name).write_bytes(b"not a blob")
    else:
        assert isinstance(store, S3BlobStore)
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + name, Body=b"not a blob")


class Broken(io.BytesIO):
    """A source that fails after ``good`` bytes: a client gone mid-upload."""

    def __init__(self, good: int) -> None:
        super().__init__(b"x" * good)

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk:
            raise ConnectionResetError("the client went away")
        return chunk


# --- the contract, for both ---------------------------------------------------


async def test_put_then_read_gives_the_bytes_their_size_and_sha256(store: BlobStore) -> None:
    key, data = _key(), b"The assembly point is by the fountain.\n" * 100
    stored = await store.put(key, io.BytesIO(data), 1 * MB)
    assert (stored.key, stored.size_bytes) == (key, len(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await store.read(key) == data
    # A put again replaces it whole.
    await store.put(key, io.BytesIO(b"v2"), 1 * MB)
    assert await store.read(key) == b"v2"


async def test_a_put_past_max_bytes_is_refused_and_leaves_nothing(store: BlobStore) -> None:
    key = _key()
    with pytest.raises(PayloadTooLarge):
        await store.put(key, io.BytesIO(b"x" * 5000), 4096)
    assert await store.existing([key]) == set()
    assert not await store.holds_any() and await _listed(store) == []
    with pytest.raises(NotFound):
        await store.read(key)


async def test_a_source_failing_midway_leaves_nothing(store: BlobStore) -> None:
    key = _key()
    with pytest.raises(ConnectionResetError):
        await store.put(key, Broken(300_000), 1 * MB)
    assert await store.existing([key]) == set() and await _listed(store) == []


async def test_missing_and_foreign_keys_are_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        await store.read(_key())
    for bad in ("../etc/passwd", "a/b", f"{uuid.uuid4()}/../{uuid.uuid4()}"):
        with pytest.raises(NotFound):
            await store.read(bad)
        with pytest.raises(NotFound):
            await store.put(bad, io.BytesIO(b"x"), 10)


async def test_delete_removes_and_is_idempotent(store: BlobStore) -> None:
    key, other = _key(), _key()
    await store.put(key, io.BytesIO(b"gone soon"), 1024)
    await store.put(other, io.BytesIO(b"stays"), 1024)
    await store.delete(key)
    await store.delete(key)  # already gone: no error
    await store.delete(_key())  # never there: no error
    assert await store.existing([key, other, "not-a-key"]) == {other}
    with pytest.raises(NotFound):
        await store.read(key)


async def test_pages_list_every_blob_a_page_at_a_time_and_nothing_else(
    store: BlobStore,
) -> None:
    assert not await store.holds_any()
    _foreign(store, "README.txt")
    assert not await store.holds_any()  # not a blob
    keys = {_key() for _ in range(5)}
    began = time.time()
    for key in keys:
        await store.put(key, io.BytesIO(key.encode()), 1024)

    sizes = [len(page) async for page in store.pages(2)]
    listed = await _listed(store)

    assert sizes == [2, 2, 1]
    assert {info.key for info in listed} == keys
    assert all(began - 5 < info.modified < time.time() + 5 for info in listed)
    assert {info.document_id for info in listed} == {uuid.UUID(k.split("/")[1]) for k in keys}
    assert await store.holds_any()
    assert await store.existing([*keys, _key()]) == keys


async def test_the_marker_is_created_once_and_replaced_only_when_asked(
    store: BlobStore,
) -> None:
    assert await store.read_marker() is None
    first, second = uuid.uuid4(), uuid.uuid4()
    # Created only if absent (a link; a conditional PUT): a second process
    # claiming it gets the first one's id.
    assert await store.write_marker(first, replace=False) == first
    assert await store.read_marker() == str(first)
    assert await store.write_marker(second, replace=False) == first
    assert await store.write_marker(second, replace=True) == second
    assert await store.read_marker() == str(second)
    assert await store.root_exists()
    assert not await store.holds_any()  # the marker is no blob
    assert MARKER not in {info.key for info in await _listed(store)}


# --- S3 only --------------------------------------------------------------------


class Calls:
    """The S3 operations a client makes, and their headers (botocore's events)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.made: list[tuple[str, dict[str, str]]] = []
        self.results: list[tuple[str, dict[str, Any]]] = []
        self.events = store.client.meta.events
        self.events.register("before-call.s3", self._before)
        self.events.register("after-call.s3", self._after)

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, dict(params.get("headers", {}))))

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.results.append((model.name, parsed))

    def names(self) -> list[str]:
        return [name for name, _ in self.made]

    def close(self) -> None:
        self.events.unregister("before-call.s3", self._before)
        self.events.unregister("after-call.s3", self._after)


@pytest.fixture
def s3_store(s3_server: S3Service) -> S3BlobStore:
    store = build_blob_store(s3_settings(s3_server))
    assert isinstance(store, S3BlobStore)
    return store


@pytest.fixture
def calls(s3_store: S3BlobStore) -> Iterator[Calls]:
    spy = Calls(s3_store)
    yield spy
    spy.close()


async def test_a_large_file_goes_up_one_part_at_a_time(s3_store: S3BlobStore, calls: Calls) -> None:
    key = _key()
    data = bytes(range(256)) * (12 * MB // 256)  # 12 MiB: parts of 5, 5 and 2
    stored = await s3_store.put(key, io.BytesIO(data), 20 * MB)
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size_bytes == len(data)
    assert calls.names() == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    assert await s3_store.read(key) == data
    # A small one is a single PutObject.
    await s3_store.put(_key(), io.BytesIO(b"small"), 20 * MB)
    assert calls.names()[-1] == "PutObject"


async def test_a_multipart_upload_past_max_bytes_is_aborted(
    s3_store: S3BlobStore, calls: Calls
) -> None:
    key = _key()
    with pytest.raises(PayloadTooLarge):
        await s3_store.put(key, io.BytesIO(b"y" * (12 * MB)), 11 * MB)
    # Two parts went up before the third passed the bound; then the abort.
    assert calls.names() == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "AbortMultipartUpload",
    ]
    [upload] = [r["UploadId"] for name, r in calls.results if name == "CreateMultipartUpload"]
    # Its parts are gone with it (AWS: no such upload; s3s-fs: no parts).
    assert _parts_of(s3_store, key, upload) == []
    assert await s3_store.existing([key]) == set()


def _parts_of(store: S3BlobStore, key: str, upload: str) -> list[Any]:
    try:
        listed = store.client.list_parts(
            Bucket=store.bucket, Key=store.prefix + key, UploadId=upload
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchUpload":
            return []
        raise
    return list(listed.get("Parts", []))


@pytest.mark.parametrize(
    ("sse", "kms_key", "headers"),
    [
        ("AES256", None, {"x-amz-server-side-encryption": "AES256"}),
        (
            "aws:kms",
            "alias/ragstream",
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": "alias/ragstream",
            },
        ),
        ("none", None, {}),
    ],
)
async def test_every_write_asks_for_the_configured_encryption(
    s3_server: S3Service, sse: str, kms_key: str | None, headers: dict[str, str]
) -> None:
    store = build_blob_store(s3_settings(s3_server, blob_s3_sse=sse, blob_s3_kms_key_id=kms_key))
    assert isinstance(store, S3BlobStore)
    spy = Calls(store)
    try:
        await store.put(_key(), io.BytesIO(b"small"), 20 * MB)
        await store.put(_key(), io.BytesIO(b"z" * (6 * MB)), 20 * MB)
        await store.write_marker(uuid.uuid4(), replace=False)
    finally:
        spy.close()
    writes = [(n, h) for n, h in spy.made if n in ("PutObject", "CreateMultipartUpload")]
    assert [n for n, _ in writes] == ["PutObject", "CreateMultipartUpload", "PutObject"]
    for _, sent in writes:
        encryption = {k.lower(): v for k, v in sent.items() if "server-side" in k.lower()}
        assert encryption == headers


async def test_a_missing_bucket_is_no_root(s3_server: S3Service) -> None:
    store = build_blob_store(s3_settings(s3_server, blob_s3_bucket="no-such-bucket"))
    assert not await store.root_exists()
    assert await store.read_marker() is None


async def test_an_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = Settings(
        blob_store="s3",
        blob_s3_bucket=BUCKET,
        blob_s3_endpoint_url=closed,
        blob_s3_region=REGION,
        blob_s3_access_key_id=ACCESS_KEY,
        blob_s3_secret_access_key=SECRET_KEY,
    )
    store = build_blob_store(settings)
    with pytest.raises(Unavailable) as failed:
        await store.put(_key(), io.BytesIO(b"x"), 10)
    assert "blob store (S3)" in failed.value.message
    with pytest.raises(Unavailable):
        await store.read(_key())


async def test_the_local_stack_starts_the_s3_server_and_hands_its_settings_on(
    tmp_path: Path,
) -> None:
    """``rag up --blob-store s3`` / ``rag services --blob-store s3``: the
    server with its bucket, and the settings the services get (the other
    servers given as external here: only S3 is started)."""
    external = {name: f"given://{name.lower()}" for name in INFRA_VARS}
    config = StackConfig.ephemeral(tmp_path / "stack", external=external, blob_store="s3")
    with LocalStack(config) as stack:
        assert [service.name for service in stack.services] == ["s3"]
        settings = stack.blob_settings
        assert settings["BLOB_STORE"] == "s3" and settings["BLOB_S3_BUCKET"] == BUCKET
        assert settings["BLOB_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{config.s3_port}"
        assert "BLOB_S3_ENDPOINT_URL" not in stack.env
        store = build_blob_store(Settings(**{k.lower(): v for k, v in settings.items()}))
        key = _key()
        await store.put(key, io.BytesIO(b"kept in the bucket"), 1024)
        assert await store.read(key) == b"kept in the bucket"
        # s3s-fs keeps objects as files, under the stack's data folder.
        assert (tmp_path / "stack" / "s3" / "data" / BUCKET / key).is_file()
    assert not stack.s3 or not stack.s3.alive
    # Without --blob-store s3, no S3 server and no settings.
    plain = LocalStack(StackConfig.ephemeral(tmp_path / "plain", external=external))
    assert plain.services == [] and plain.blob_settings == {}


def test_credentials_are_never_shown() -> None:
    settings = Settings(
        blob_store="s3",
        blob_s3_bucket=BUCKET,
        blob_s3_access_key_id="AKIAEXAMPLEKEYID0000",
        blob_s3_secret_access_key="very-secret-value",
        blob_s3_session_token="a-session-token",
    )
    shown = repr(settings) + str(settings.model_dump())
    for secret in ("AKIAEXAMPLEKEYID0000", "very-secret-value", "a-session-token"):
        assert secret not in shown
