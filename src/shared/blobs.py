"""The blob store behind the claim check: uploads live here, Kafka carries
only their key. A local folder by default; shared storage (a volume or a
bucket) when gateway and ingest workers run on different machines."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

from shared.errors import NotFound, PayloadTooLarge

_KEY = re.compile(r"^[0-9a-f-]{36}/[0-9a-f-]{36}$")
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size_bytes: int
    sha256: str


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
        digest, size = hashlib.sha256(), 0
        with partial.open("wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    out.close()
                    partial.unlink(missing_ok=True)
                    raise PayloadTooLarge(f"file is larger than {max_bytes // (1024 * 1024)} MB")
                digest.update(chunk)
                out.write(chunk)
        partial.replace(path)
        return StoredBlob(key=key, size_bytes=size, sha256=digest.hexdigest())

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no blob {key!r}") from None

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def put(self, key: str, source: BinaryIO, max_bytes: int) -> StoredBlob:
        """Copy ``source`` in, hashing as it goes; refuse past ``max_bytes``."""
        return await asyncio.to_thread(self._put, key, source, max_bytes)

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)
