"""Which blob root belongs to which database.

When the blob store is first used (a gateway starts, or the reconciler runs,
on an empty store), a marker file holding a random id is written in
``BLOB_DIR`` and the same id recorded in PostgreSQL (table ``blob_root``).
From then on, a blob root without that marker is not this deployment's: an
unmounted volume, a misconfigured ``BLOB_DIR``, another deployment's store.
The reconciler refuses to delete anything then (``ingest.reconciler``).

The marker travels with the blobs: a backup that copies ``BLOB_DIR`` (``tar
-C "$BLOB_DIR" .``) carries it, the database dump carries the id.

First use, precisely: PostgreSQL records no marker and either the root holds
a marker (recorded as it is: the root was marked and the record lost, e.g. a
database restored from a backup older than the marker), or holds blobs (a
deployment from before markers), or the database holds no documents (a new
deployment). A root without marker or blobs while documents exist is never
claimed: that is the root of the wrong volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg
import structlog

from shared.storage import documents
from shared.storage.blobs import LocalBlobStore

log = structlog.get_logger(__name__)

MARKER = ".ragstream-blob-root"


@dataclass(frozen=True)
class RootState:
    """What ``BLOB_DIR`` looks like now."""

    path: Path
    exists: bool
    marker_text: str | None  # None: no marker file
    has_blobs: bool

    @property
    def marker(self) -> UUID | None:
        """The marker's id; ``None`` if there is none or it is not an id."""
        try:
            return UUID(self.marker_text) if self.marker_text is not None else None
        except ValueError:
            return None


async def inspect(blobs: LocalBlobStore) -> RootState:
    marker_text = await asyncio.to_thread(_read_marker, blobs.root)
    return RootState(
        path=blobs.root,
        exists=blobs.root.is_dir(),
        marker_text=marker_text,
        has_blobs=await blobs.holds_any(),
    )


async def recorded(pool: asyncpg.Pool) -> UUID | None:
    """The marker id PostgreSQL records (``None``: none yet)."""
    value: UUID | None = await pool.fetchval("SELECT marker FROM blob_root")
    return value


def first_use(known: UUID | None, root: RootState, rows_exist: bool) -> bool:
    """Whether ``claim`` would mark or record this root (module docstring)."""
    if known is not None:
        return False
    if root.marker_text is not None:
        return root.marker is not None
    return root.has_blobs or not rows_exist


async def claim(pool: asyncpg.Pool, blobs: LocalBlobStore) -> UUID | None:
    """On first use, mark the blob root and record its id; the id recorded
    afterwards (``None``: not a first use, nothing written). Safe to run
    from several processes at once: the marker file is created only if
    absent, and the first id recorded wins."""
    if (known := await recorded(pool)) is not None:
        return known
    root = await inspect(blobs)
    if not first_use(None, root, await documents.any_exist(pool)):
        return None
    marker = root.marker or uuid.uuid4()
    if root.marker_text is None:
        # Another process may have marked it meanwhile: its id is kept.
        marker = await asyncio.to_thread(_write_marker, blobs.root, marker, replace=False)
    await pool.execute(
        "INSERT INTO blob_root (marker) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", marker
    )
    return await recorded(pool)


async def claim_at_start(pool: asyncpg.Pool, blobs: LocalBlobStore) -> None:
    """``claim`` as a process that writes blobs starts: never fatal (the
    reconciler checks again before it deletes anything), only logged."""
    try:
        marker = await claim(pool, blobs)
    except Exception as exc:
        log.warning("Blob root not checked", error=f"{type(exc).__name__}: {exc}")
        return
    if marker is None:
        log.warning(
            "Blob root unmarked: documents exist but BLOB_DIR holds neither blobs nor a marker",
            blob_dir=str(blobs.root),
        )


async def adopt(pool: asyncpg.Pool, blobs: LocalBlobStore) -> UUID:
    """Make ``BLOB_DIR`` this deployment's blob root whatever it holds: the
    recorded id (a new one if none) written to its marker, replacing any.
    Only after an operator has checked that it is the right folder."""
    marker = await recorded(pool) or uuid.uuid4()
    await pool.execute(
        "INSERT INTO blob_root (marker) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", marker
    )
    marker = await recorded(pool) or marker
    await asyncio.to_thread(_write_marker, blobs.root, marker, replace=True)
    return marker


def _read_marker(root: Path) -> str | None:
    try:
        return (root / MARKER).read_text(encoding="utf-8", errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_marker(root: Path, marker: UUID, *, replace: bool) -> UUID:
    """Write it whole under a temporary name, then put it in place (only if
    absent, unless ``replace``); the id the marker holds afterwards."""
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
