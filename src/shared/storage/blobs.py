"""The blob store behind the claim check: uploads live here, Kafka carries
only their key. A local folder by default; shared storage (a volume or a
bucket) when gateway and ingest workers run on different machines."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

from shared.errors import NotFound, PayloadTooLarge

# A finished blob, or one still being written (``.partial``).
_KEY = re.compile(r"^[0-9a-f-]{36}/[0-9a-f-]{36}(\.partial)?$")
_TENANT = re.compile(r"^[0-9a-f-]{36}$")
_NAME = re.compile(r"^[0-9a-f-]{36}(\.partial)?$")
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class BlobInfo:
    """One listed blob; ``modified`` is its mtime in seconds since the epoch."""

    key: str
    modified: float

    @property
    def document_id(self) -> UUID | None:
        """The document the key was built for (``None``: not one of ours)."""
        try:
            return UUID(self.key.split("/", 1)[1].removesuffix(".partial"))
        except (IndexError, ValueError):
            return None


def blob_key(tenant_id: UUID, document_id: UUID) -> str:
    return f"{tenant_id}/{document_id}"


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        # Keys are built by blob_key(); anything else never touches the disk.
        if not _KEY.match(key):
            raise NotFound(f"no blob {key!r}")
        return self.root / key

    def _put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        try:
            digest, size = _copy(source, partial, max_bytes)
        except BaseException:
            # Too large, a full disk, a closed source: never leave half a file.
            partial.unlink(missing_ok=True)
            raise
        partial.replace(path)
        return StoredBlob(key=key, size_bytes=size, sha256=digest)

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r}") from None

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _exists(self, keys: list[str]) -> set[str]:
        return {key for key in keys if _KEY.match(key) and self._path(key).is_file()}

    def _walk(self) -> Generator[BlobInfo, None, None]:
        """Every blob, streamed from the directory listings (never all names
        in memory at once); files that are not ours are skipped, not listed."""
        if not self.root.is_dir():
            return
        with os.scandir(self.root) as tenants:
            for tenant in tenants:
                if tenant.is_dir(follow_symlinks=False) and _TENANT.match(tenant.name):
                    yield from _blobs_in(tenant)

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob:
        """Copy ``source`` in, hashing as it goes; refuse past ``max_bytes``."""
        return await asyncio.to_thread(self._put, key, source, max_bytes)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def existing(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` are stored."""
        return await asyncio.to_thread(self._exists, keys)

    async def holds_any(self) -> bool:
        """Whether at least one blob is stored (finished or partial)."""
        return await asyncio.to_thread(_holds_any, self._walk())

    async def pages(self, size: int) -> AsyncIterator[list[BlobInfo]]:
        """Every blob, ``size`` at a time, in no particular order. A blob
        added or removed during the walk may or may not be listed."""
        walk = self._walk()
        try:
            while page := await asyncio.to_thread(_take, walk, size):
                yield page
        finally:
            walk.close()


def _copy(source: BinaryIO, target: Path, max_bytes: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"file is larger than {max_bytes // (1024 * 1024)} MB")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _blobs_in(tenant: os.DirEntry[str]) -> Iterator[BlobInfo]:
    try:
        with os.scandir(tenant.path) as entries:
            for entry in entries:
                if not _NAME.match(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue  # deleted since it was listed
                yield BlobInfo(f"{tenant.name}/{entry.name}", modified)
    except FileNotFoundError:
        return  # the folder went away while we walked


def _holds_any(walk: Generator[BlobInfo, None, None]) -> bool:
    try:
        return next(walk, None) is not None
    finally:
        walk.close()


def _take(items: Iterator[BlobInfo], size: int) -> list[BlobInfo]:
    return list(itertools.islice(items, size))
