"""Which blob root belongs to which database.

When the blob store is first used (a gateway starts, or the reconciler runs,
on an empty store), a marker holding a random id is written in the blob root
(the file ``BLOB_DIR/.ragstream-blob-root``; on S3 the object
``<BLOB_S3_PREFIX>.ragstream-blob-root``) and the same id recorded in
PostgreSQL (table ``blob_root``). From then on, a blob root without that
marker is not this deployment's: an unmounted volume, a misconfigured
``BLOB_DIR`` or bucket or prefix, another deployment's store. The reconciler
refuses to delete anything then (``ingest.reconciler``).

The marker travels with the blobs: a backup that copies ``BLOB_DIR`` (``tar
-C "$BLOB_DIR" .``) or the bucket's prefix (``aws s3 sync``) carries it, the
database dump carries the id.

First use, precisely: PostgreSQL records no marker and either the root holds
a marker (recorded as it is: the root was marked and the record lost, e.g. a
database restored from a backup older than the marker), or holds blobs (a
deployment from before markers), or the database holds no documents (a new
deployment). A root without marker or blobs while documents exist is never
claimed: that is the root of the wrong volume.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog

from shared.storage import documents
from shared.storage.blobs import MARKER, BlobStore

log = structlog.get_logger(__name__)

__all__ = ["MARKER", "RootState", "adopt", "claim", "claim_at_start", "first_use", "inspect"]


@dataclass(frozen=True)
class RootState:
    """What the blob root looks like now."""

    where: str  # ``BlobStore.where``: "BLOB_DIR /data/blobs", "S3 s3://bucket/prefix/"
    settings: str  # the settings that name it
    hint: str  # what to check when it looks wrong
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


async def inspect(blobs: BlobStore) -> RootState:
    marker_text = await blobs.read_marker()
    return RootState(
        where=blobs.where,
        settings=blobs.setting_names,
        hint=blobs.settings_hint,
        exists=await blobs.root_exists(),
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


async def claim(pool: asyncpg.Pool, blobs: BlobStore) -> UUID | None:
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
        marker = await blobs.write_marker(marker, replace=False)
    await pool.execute(
        "INSERT INTO blob_root (marker) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", marker
    )
    return await recorded(pool)


async def claim_at_start(pool: asyncpg.Pool, blobs: BlobStore) -> None:
    """``claim`` as a process that writes blobs starts: never fatal (the
    reconciler checks again before it deletes anything), only logged."""
    try:
        marker = await claim(pool, blobs)
    except Exception as exc:
        log.warning("Blob root not checked", error=f"{type(exc).__name__}: {exc}")
        return
    if marker is None:
        log.warning(
            "Blob root unmarked: documents exist but the blob root holds neither blobs nor a"
            " marker",
            blob_root=blobs.where,
        )


async def adopt(pool: asyncpg.Pool, blobs: BlobStore) -> UUID:
    """Make the blob root this deployment's whatever it holds: the
    recorded id (a new one if none) written to its marker, replacing any.
    Only after an operator has checked that it is the right folder."""
    marker = await recorded(pool) or uuid.uuid4()
    await pool.execute(
        "INSERT INTO blob_root (marker) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", marker
    )
    marker = await recorded(pool) or marker
    await blobs.write_marker(marker, replace=True)
    return marker
