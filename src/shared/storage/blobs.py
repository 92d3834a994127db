"""The blob store behind the claim check: uploads live here, Kafka carries
only their key. A local folder by default (``LocalBlobStore``: one machine,
or a volume every gateway and ingest worker mounts); an S3 bucket
(``shared.storage.s3_blobs``) when no shared volume is to be had.

Both keep the same promises (``BlobStore``): a blob is either whole or
absent under its key, never half-written; a failed or refused ``put``
leaves nothing readable; ``pages`` lists every blob, bounded in memory; the
root holds a marker (``shared.storage.blob_root``) that ties it to its
database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import re
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from uuid import UUID

from shared.errors import NotFound, PayloadTooLarge

# A finished blob, or one still being written (``.partial``).
_KEY = re.compile(r"^[0-9a-f-]{36}/[0-9a-f-]{36}(\.partial)?$")
_TENANT = re.compile(r"^[0-9a-f-]{36}$")
_NAME = re.compile(r"^[0-9a-f-]{36}(\.partial)?$")
_COPY_CHUNK = 1024 * 1024
# The file in the blob root (an object under the prefix, on S3) whose id ties
# the root to its database: ``shared.storage.blob_root``.
MARKER = ".ragstream-blob-root"


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


def is_key(key: str) -> bool:
    """Whether ``key`` is one ``blob_key`` builds (or its ``.partial``)."""
    return _KEY.match(key) is not None


class BlobStore(Protocol):
    """What the gateway, the ingest workers, the reconciler and ``rag
    ingest`` use; ``LocalBlobStore`` and ``S3BlobStore`` keep it alike."""

    @property
    def where(self) -> str:
        """The root, as an operator would name it in a setting."""
        ...

    @property
    def setting_names(self) -> str:
        """The settings that name the root."""
        ...

    @property
    def settings_hint(self) -> str:
        """What to check when the root looks wrong."""
        ...

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob: ...

    async def read(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def existing(self, keys: list[str]) -> set[str]: ...

    async def holds_any(self) -> bool: ...

    def pages(self, size: int) -> AsyncIterator[list[BlobInfo]]: ...

    async def root_exists(self) -> bool: ...

    async def read_marker(self) -> str | None: ...

    async def write_marker(self, marker: UUID, *, replace: bool) -> UUID: ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def where(self) -> str:
        return f"BLOB_DIR {self.root}"

    @property
    def setting_names(self) -> str:
        return "BLOB_DIR"

    @property
    def settings_hint(self) -> str:
        return "check that BLOB_DIR is set as on the gateway and that its volume is mounted"

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

    async def root_exists(self) -> bool:
        return await asyncio.to_thread(self.root.is_dir)

    async def read_marker(self) -> str | None:
        """The marker file's text; ``None`` if there is none."""
        return await asyncio.to_thread(_read_marker, self.root)

    async def write_marker(self, marker: UUID, *, replace: bool) -> UUID:
        """Write it whole under a temporary name, then put it in place (only
        if absent, unless ``replace``); the id the marker holds afterwards."""
        return await asyncio.to_thread(_write_marker, self.root, marker, replace=replace)


class Metered:
    """Reads ``source`` hashing and counting as it goes; past ``max_bytes``
    it raises ``PayloadTooLarge`` (the caller then removes what it wrote)."""

    def __init__(self, source: BinaryIO, max_bytes: int) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.size = 0
        self._digest = hashlib.sha256()

    def read(self, size: int = _COPY_CHUNK) -> bytes:
        chunk = self.source.read(size)
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"file is larger than {self.max_bytes // (1024 * 1024)} MB")
        self._digest.update(chunk)
        return chunk

    def read_part(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at the end of the source."""
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and (chunk := self.read(min(wanted, _COPY_CHUNK))):
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def stored(self, key: str) -> StoredBlob:
        return StoredBlob(key=key, size_bytes=self.size, sha256=self._digest.hexdigest())


def _copy(source: BinaryIO, target: Path, max_bytes: int) -> tuple[str, int]:
    metered = Metered(source, max_bytes)
    with target.open("wb") as out:
        while chunk := metered.read():
            out.write(chunk)
    stored = metered.stored("")
    return stored.sha256, stored.size_bytes


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


def _read_marker(root: Path) -> str | None:
    try:
        return (root / MARKER).read_text(encoding="utf-8", errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_marker(root: Path, marker: UUID, *, replace: bool) -> UUID:
    root.mkdir(parents=True, exist_ok=True)
    target = root / MARKER
    temporary = root / f"{MARKER}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(f"{marker}\n", encoding="utf-8")
    try:
        if replace:
            os.replace(temporary, target)
            return marker
        try:
            os.link(temporary, target)  # fails if it exists: atomic create
        except FileExistsError:
            text = _read_marker(root) or ""
            with contextlib.suppress(ValueError):
                return UUID(text)
            raise
        return marker
    finally:
        temporary.unlink(missing_ok=True)
