"""The blob store in an S3 bucket (``BLOB_STORE=s3``): no shared volume needed.

The same promises as ``LocalBlobStore`` (``shared.storage.blobs``), kept
with S3's own means:

- whole or absent: an object appears only when its ``PutObject`` or
  ``CompleteMultipartUpload`` succeeds, so a reader never sees half a file
  (where the local store writes ``.partial`` and renames). A failed or refused
  upload is aborted; one cut short by a crash leaves parts that are no object
  and are never listed: the bucket's lifecycle rule
  ``AbortIncompleteMultipartUpload`` removes them (docs/deployment.md).
- bounded memory: a file is read from its source one part at a time
  (``BLOB_S3_PART_MB``), hashed as it goes; a file larger than one part goes
  up as a multipart upload.
- keys: ``<BLOB_S3_PREFIX><tenant>/<document>``, the same keys as in a
  folder; ``pages`` lists only those, ``modified`` is ``LastModified``.

boto3 blocks: every call runs in a thread. The client is built once per
process (``shared.runtime.clients``) and shared by those threads (botocore
clients are thread-safe). Any S3 failure but a missing key is
``Unavailable``: an upload answers 503, an ingest worker retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import NotFound, Unavailable
from shared.storage.blobs import MARKER, BlobInfo, Metered, StoredBlob, is_key

T = TypeVar("T")
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
# put_object(IfNoneMatch="*") on an existing key: 412, or 409 while another
# conditional write of it is in flight.
_EXISTS = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"
    part_bytes: int
    # Extra arguments of PutObject and CreateMultipartUpload: the encryption.
    encryption: dict[str, str]
    concurrency: int


def normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def encryption_args(sse: str, kms_key_id: str | None) -> dict[str, str]:
    """``BLOB_S3_SSE`` (and ``BLOB_S3_KMS_KEY_ID``) as request arguments."""
    if sse == "none":
        return {}
    args = {"ServerSideEncryption": sse}
    if sse == "aws:kms" and kms_key_id:
        args["SSEKMSKeyId"] = kms_key_id
    return args


class S3BlobStore:
    def __init__(self, client: Any, location: S3Location) -> None:
        self.client = client
        self.location = location
        self.bucket = location.bucket
        self.prefix = location.prefix

    # --- what an operator reads in a refusal ------------------------------------
    @property
    def where(self) -> str:
        return f"S3 s3://{self.bucket}/{self.prefix}"

    @property
    def setting_names(self) -> str:
        return "BLOB_S3_BUCKET, BLOB_S3_PREFIX and BLOB_S3_ENDPOINT_URL"

    @property
    def settings_hint(self) -> str:
        return (
            "check that BLOB_STORE, BLOB_S3_BUCKET, BLOB_S3_PREFIX and BLOB_S3_ENDPOINT_URL"
            " are set as on the gateway"
        )

    # --- the interface ------------------------------------------------------------
    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob:
        """Stream ``source`` in, hashing as it goes; refuse past ``max_bytes``."""
        return await self._call(self._put, key, source, max_bytes)

    async def read(self, key: str) -> bytes:
        return await self._call(self._read, key)

    async def delete(self, key: str) -> None:
        await self._call(self._delete, key)

    async def existing(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` are stored (a HEAD each, several at once)."""
        return await self._call(self._exists, keys)

    async def holds_any(self) -> bool:
        """Whether at least one blob is stored under the prefix."""
        walk = self._walk()
        try:
            return await self._call(lambda: next(walk, None) is not None)
        finally:
            walk.close()

    async def pages(self, size: int) -> AsyncIterator[list[BlobInfo]]:
        """Every blob, ``size`` at a time, in key order (S3 lists so); one
        listing page (1,000 keys) is held at a time."""
        walk = self._walk()
        try:
            while page := await self._call(lambda: list(itertools.islice(walk, size))):
                yield page
        finally:
            walk.close()

    async def root_exists(self) -> bool:
        """Whether the bucket is there (and ours to read)."""
        return await self._call(self._bucket_exists)

    async def read_marker(self) -> str | None:
        return await self._call(self._read_marker)

    async def write_marker(self, marker: UUID, *, replace: bool) -> UUID:
        """Written only if absent (a conditional PUT), unless ``replace``;
        the id the marker holds afterwards."""
        return await self._call(self._write_marker, marker, replace)

    # --- in a thread -------------------------------------------------------------
    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(work, *args)
        except ClientError as exc:
            raise Unavailable(f"the blob store (S3) failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            # Connection refused or timed out, a bad endpoint, no credentials.
            raise Unavailable(f"the blob store (S3) failed: {type(exc).__name__}") from exc

    def _name(self, key: str) -> str:
        # Keys are built by blob_key(); anything else never reaches the bucket.
        if not is_key(key):
            raise NotFound(f"no blob {key!r}")
        return self.prefix + key

    def _put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob:
        name = self._name(key)
        metered = Metered(source, max_bytes)
        first = metered.read_part(self.location.part_bytes)
        if len(first) < self.location.part_bytes:
            self.client.put_object(
                Bucket=self.bucket, Key=name, Body=first, **self.location.encryption
            )
        else:
            self._multipart(name, first, metered)
        return metered.stored(key)

    def _multipart(self, name: str, first: bytes, metered: Metered) -> None:
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=name, **self.location.encryption
        )["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            part = first
            while part:
                number = len(parts) + 1
                done = self.client.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload, PartNumber=number, Body=part
                )
                parts.append({"ETag": done["ETag"], "PartNumber": number})
                part = metered.read_part(self.location.part_bytes)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # Too large, S3 failing, a closed source: no object, and no parts kept.
            # If even that fails, the bucket's lifecycle rule removes the parts.
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload)
            raise

    def _read(self, key: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFound(f"no blob {key!r}") from None
            raise
        with body:
            data: bytes = body.read()
            return data

    def _delete(self, key: str) -> None:
        if key.endswith(".partial"):
            return  # never an object on S3: an unfinished upload has no key
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def _exists(self, keys: list[str]) -> set[str]:
        ours = [key for key in keys if is_key(key)]
        if not ours:
            return set()
        with ThreadPoolExecutor(max_workers=self.location.concurrency) as pool:
            found = pool.map(self._head, ours)
            return {key for key, present in zip(ours, found, strict=True) if present}

    def _head(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    def _walk(self) -> Generator[BlobInfo, None, None]:
        """Every blob under the prefix, a listing page at a time; objects
        that are not ours (the marker, anything else) are skipped."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            for item in page.get("Contents", ()):
                key = item["Key"][len(self.prefix) :]
                if is_key(key):
                    yield BlobInfo(key, item["LastModified"].timestamp())

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in _NO_BUCKET | _MISSING:
                return False
            raise
        return True

    def _read_marker(self) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + MARKER)["Body"]
        except ClientError as exc:
            if _code(exc) in _MISSING | _NO_BUCKET:
                return None
            raise
        with body:
            text: str = body.read().decode("utf-8", errors="replace").strip()
            return text

    def _write_marker(self, marker: UUID, replace: bool) -> UUID:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.prefix + MARKER,
            "Body": f"{marker}\n".encode(),
            **self.location.encryption,
        }
        if not replace:
            args["IfNoneMatch"] = "*"  # atomic create: the first writer wins
        try:
            self.client.put_object(**args)
        except ClientError as exc:
            if replace or _code(exc) not in _EXISTS:
                raise
            return UUID(self._read_marker() or "")  # ValueError: not an id
        return marker


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))
