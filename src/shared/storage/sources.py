"""The ``sources``, ``source_files`` and ``sync_runs`` tables (folder sync).

Reads for the API are scoped to the caller's tenant in SQL: another
tenant's source id looks exactly like one that does not exist. The sync
workers' writes name the worker: a source is run by the worker holding its
lease (``claim``), and a file's row is written only while that lease holds
(``_HELD``), so a worker that lost its lease (stalled past it, or taken
over) cannot write over its successor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg

from shared.errors import Conflict
from shared.storage.documents import Db, Visibility

FileStatus = Literal["pending", "synced", "failed", "skipped"]
Outcome = Literal["running", "ok", "partial", "failed", "interrupted"]

_COLUMNS = (
    "id, tenant_id, user_id, name, path, include, exclude, max_bytes, visibility, group_ids,"
    " tags, meta, interval_seconds, created_at, next_run_at, removing_at, keep_documents,"
    " lease_owner, lease_until"
)
_FIELDS = tuple(name.strip() for name in _COLUMNS.split(","))


@dataclass(frozen=True)
class Source:
    id: UUID
    tenant_id: UUID
    user_id: UUID
    name: str
    path: str
    include: list[str]
    exclude: list[str]
    max_bytes: int
    visibility: Visibility
    group_ids: list[UUID]
    tags: list[str]
    meta: dict[str, str]
    interval_seconds: int
    created_at: datetime
    next_run_at: datetime
    removing_at: datetime | None = None
    keep_documents: bool = False
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Source:
        fields = {name: record[name] for name in _FIELDS}
        if isinstance(fields["meta"], str):
            fields["meta"] = json.loads(fields["meta"])
        return cls(**fields)


@dataclass(frozen=True)
class NewSource:
    tenant_id: UUID
    user_id: UUID
    name: str
    path: str
    include: list[str]
    exclude: list[str]
    max_bytes: int
    visibility: Visibility
    tags: list[str]
    meta: dict[str, str]
    interval_seconds: int
    group_ids: list[UUID] = field(default_factory=list)


async def create(pool: Db, new: NewSource) -> Source:
    try:
        record = await pool.fetchrow(
            "INSERT INTO sources (id, tenant_id, user_id, name, path, include, exclude,"  # noqa: S608
            " max_bytes, visibility, tags, meta, interval_seconds, group_ids)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11::text::jsonb,$12,$13::uuid[])"
            f" RETURNING {_COLUMNS}",
            uuid4(),
            new.tenant_id,
            new.user_id,
            new.name,
            new.path,
            new.include,
            new.exclude,
            new.max_bytes,
            new.visibility,
            new.tags,
            json.dumps(new.meta),
            new.interval_seconds,
            new.group_ids,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"the tenant already has a source named {new.name!r}") from None
    assert record is not None
    return Source.from_record(record)


async def live_groups(pool: Db, source: Source) -> list[UUID]:
    """The source's groups that still exist (in its tenant), by id."""
    if not source.group_ids:
        return []
    rows = await pool.fetch(
        "SELECT id FROM groups WHERE tenant_id=$1 AND id = ANY($2::uuid[]) ORDER BY id",
        source.tenant_id,
        source.group_ids,
    )
    return [row["id"] for row in rows]


async def in_tenant(pool: Db, tenant_id: UUID) -> list[Source]:
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM sources WHERE tenant_id=$1 ORDER BY name",  # noqa: S608
        tenant_id,
    )
    return [Source.from_record(row) for row in rows]


async def get(pool: Db, tenant_id: UUID, source_id: UUID) -> Source | None:
    record = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM sources WHERE id=$1 AND tenant_id=$2",  # noqa: S608
        source_id,
        tenant_id,
    )
    return Source.from_record(record) if record else None


async def by_id(pool: Db, source_id: UUID) -> Source | None:
    """For workers: the row, whatever its tenant."""
    record = await pool.fetchrow(f"SELECT {_COLUMNS} FROM sources WHERE id=$1", source_id)  # noqa: S608
    return Source.from_record(record) if record else None


async def request_run(pool: Db, tenant_id: UUID, source_id: UUID) -> bool:
    """Due now (a worker takes it once free); whether there is such a source."""
    result: str = await pool.execute(
        "UPDATE sources SET next_run_at=now() WHERE id=$1 AND tenant_id=$2 AND removing_at IS NULL",
        source_id,
        tenant_id,
    )
    return result != "UPDATE 0"


async def mark_removing(pool: Db, tenant_id: UUID, source_id: UUID, *, keep: bool) -> bool:
    """Left to a sync worker to remove (with its documents unless ``keep``),
    due now; whether there is such a source."""
    result: str = await pool.execute(
        "UPDATE sources SET removing_at=coalesce(removing_at, now()), keep_documents=$3,"
        " next_run_at=now() WHERE id=$1 AND tenant_id=$2",
        source_id,
        tenant_id,
        keep,
    )
    return result != "UPDATE 0"


# The next source due whose lease is free (never held, or lapsed), taken
# for ``$1`` for ``$2`` seconds. Removals go first. SKIP LOCKED: two workers
# claiming at once take two different sources (or one takes none).
_CLAIM = f"""
UPDATE sources AS s SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
FROM (
    SELECT id FROM sources
    WHERE next_run_at <= now() AND (lease_until IS NULL OR lease_until < now())
    ORDER BY removing_at IS NULL, next_run_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS due
WHERE s.id = due.id
RETURNING {", ".join("s." + name for name in _FIELDS)}
"""  # noqa: S608


async def claim(pool: Db, worker: str, lease_seconds: float) -> Source | None:
    record = await pool.fetchrow(_CLAIM, worker, float(lease_seconds))
    return Source.from_record(record) if record else None


async def renew(pool: Db, source_id: UUID, worker: str, lease_seconds: float) -> bool:
    """Whether ``worker`` still holds the lease (then extended)."""
    result: str = await pool.execute(
        "UPDATE sources SET lease_until = now() + make_interval(secs => $3)"
        " WHERE id=$1 AND lease_owner=$2 AND lease_until > now()",
        source_id,
        worker,
        float(lease_seconds),
    )
    return result != "UPDATE 0"


async def release(pool: Db, source_id: UUID, worker: str, next_in_seconds: float) -> None:
    """Let go of the lease; due again in ``next_in_seconds`` (unless a run
    was asked for meanwhile: then the earlier time stays)."""
    await pool.execute(
        "UPDATE sources SET lease_owner=NULL, lease_until=NULL,"
        " next_run_at = CASE WHEN next_run_at > run.started_at THEN next_run_at"
        "   ELSE now() + make_interval(secs => $3) END"
        " FROM (SELECT coalesce(max(started_at), now()) AS started_at FROM sync_runs"
        "       WHERE source_id=$1) AS run"
        " WHERE id=$1 AND lease_owner=$2",
        source_id,
        worker,
        float(next_in_seconds),
    )


async def delete(pool: Db, source_id: UUID, worker: str) -> bool:
    result: str = await pool.execute(
        "DELETE FROM sources WHERE id=$1 AND lease_owner=$2", source_id, worker
    )
    return result != "DELETE 0"


# --- files -------------------------------------------------------------------


@dataclass(frozen=True)
class FileRow:
    relpath: str
    document_id: UUID | None
    sha256: str | None
    size_bytes: int | None
    mtime_ns: int | None
    status: FileStatus
    error: str | None
    failures: int = 0


async def files(pool: Db, source_id: UUID) -> dict[str, FileRow]:
    rows = await pool.fetch(
        "SELECT relpath, document_id, sha256, size_bytes, mtime_ns, status, error, failures"
        " FROM source_files WHERE source_id=$1",
        source_id,
    )
    return {row["relpath"]: FileRow(**dict(row)) for row in rows}


class LeaseLost(Exception):
    """Another worker runs this source now (or it was removed): stop."""


# A write by the worker holding the source's lease ($1 the source, $2 the
# worker), and only then.
_HELD = "EXISTS (SELECT 1 FROM sources WHERE id=$1 AND lease_owner=$2 AND lease_until > now())"


async def put_file(pool: Db, source_id: UUID, worker: str, row: FileRow) -> None:
    """Write the file's row (new or replaced), while ``worker`` holds the lease."""
    result: str = await pool.execute(
        "INSERT INTO source_files (source_id, relpath, document_id, sha256, size_bytes,"
        " mtime_ns, status, error, failures, updated_at)"
        " SELECT $1,$3,$4,$5,$6,$7,$8,$9,$10,now() WHERE " + _HELD + " ON CONFLICT (source_id,"
        " relpath) DO UPDATE SET document_id=EXCLUDED.document_id, sha256=EXCLUDED.sha256,"
        " size_bytes=EXCLUDED.size_bytes, mtime_ns=EXCLUDED.mtime_ns, status=EXCLUDED.status,"
        " error=EXCLUDED.error, failures=EXCLUDED.failures, updated_at=now()",
        source_id,
        worker,
        row.relpath,
        row.document_id,
        row.sha256,
        row.size_bytes,
        row.mtime_ns,
        row.status,
        row.error,
        row.failures,
    )
    if result == "INSERT 0 0":
        raise LeaseLost(str(source_id))


async def drop_file(pool: Db, source_id: UUID, worker: str, relpath: str) -> None:
    result: str = await pool.execute(
        "DELETE FROM source_files WHERE source_id=$1 AND relpath=$3 AND " + _HELD,  # noqa: S608
        source_id,
        worker,
        relpath,
    )
    if result == "DELETE 0":
        # Gone already (a repeat), or not ours: tell them apart.
        held = await pool.fetchval("SELECT " + _HELD, source_id, worker)
        if not held:
            raise LeaseLost(str(source_id))


async def existing_documents(pool: Db, ids: list[UUID]) -> set[UUID]:
    rows = await pool.fetch("SELECT id FROM documents WHERE id = ANY($1::uuid[])", ids)
    return {row["id"] for row in rows}


# --- runs --------------------------------------------------------------------


@dataclass
class Run:
    id: UUID
    source_id: UUID
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: Outcome
    error: str | None
    files_total: int
    files_done: int
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Run:
        fields = dict(record)
        if isinstance(fields["counts"], str):
            fields["counts"] = json.loads(fields["counts"])
        return cls(**fields)


_RUN_COLUMNS = (
    "id, source_id, worker, started_at, finished_at, outcome, error, files_total, files_done,"
    " counts"
)


async def start_run(pool: asyncpg.Pool, source_id: UUID, worker: str) -> UUID:
    """A new run of the source by ``worker``; an earlier one still marked
    running was cut short (its worker died): ``interrupted``."""
    run_id = uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE sync_runs SET outcome='interrupted', finished_at=now()"
            " WHERE source_id=$1 AND outcome='running'",
            source_id,
        )
        await conn.execute(
            "INSERT INTO sync_runs (id, source_id, worker) VALUES ($1, $2, $3)",
            run_id,
            source_id,
            worker,
        )
    return run_id


async def progress(pool: Db, run_id: UUID, done: int, total: int, counts: dict[str, int]) -> None:
    await pool.execute(
        "UPDATE sync_runs SET files_done=$2, files_total=$3, counts=$4::text::jsonb WHERE id=$1",
        run_id,
        done,
        total,
        json.dumps(counts),
    )


async def finish_run(
    pool: Db, run_id: UUID, outcome: Outcome, error: str | None, counts: dict[str, int]
) -> None:
    await pool.execute(
        "UPDATE sync_runs SET outcome=$2, error=$3, counts=$4::text::jsonb, finished_at=now()"
        " WHERE id=$1",
        run_id,
        outcome,
        error,
        json.dumps(counts),
    )


async def runs_of(pool: Db, source_id: UUID, limit: int) -> list[Run]:
    rows = await pool.fetch(
        f"SELECT {_RUN_COLUMNS} FROM sync_runs WHERE source_id=$1"  # noqa: S608
        " ORDER BY started_at DESC LIMIT $2",
        source_id,
        limit,
    )
    return [Run.from_record(row) for row in rows]


async def latest_runs(pool: Db, source_ids: list[UUID]) -> dict[UUID, list[Run]]:
    """Each source's current (running) and last finished run, newest first."""
    rows = await pool.fetch(
        f"SELECT {_RUN_COLUMNS} FROM (SELECT *, row_number() OVER"  # noqa: S608
        " (PARTITION BY source_id, outcome = 'running' ORDER BY started_at DESC) AS n"
        " FROM sync_runs WHERE source_id = ANY($1::uuid[])) AS r WHERE n = 1"
        " ORDER BY started_at DESC",
        source_ids,
    )
    found: dict[UUID, list[Run]] = {}
    for row in rows:
        found.setdefault(row["source_id"], []).append(Run.from_record(row))
    return found


# --- what the API shows ------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    relpath: str
    status: str  # failed, skipped, or the document's failed ingestion
    reason: str
    failures: int
    document_id: UUID | None


async def file_counts(pool: Db, source_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    rows = await pool.fetch(
        "SELECT source_id, status, count(*)::int AS n FROM source_files"
        " WHERE source_id = ANY($1::uuid[]) GROUP BY source_id, status",
        source_ids,
    )
    found: dict[UUID, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["source_id"], {})[row["status"]] = row["n"]
    return found


async def problems(pool: Db, source_id: UUID, limit: int) -> list[Problem]:
    """Files that failed or were skipped, with the reason, and files whose
    document failed to index (with the ingest worker's reason)."""
    rows: list[Any] = await pool.fetch(
        "SELECT f.relpath, CASE WHEN f.status IN ('failed', 'skipped') THEN f.status"
        "   ELSE 'not indexed' END AS status,"
        " coalesce(CASE WHEN f.status IN ('failed', 'skipped') THEN f.error END, d.error,"
        "   'failed') AS reason, f.failures, f.document_id"
        " FROM source_files f LEFT JOIN documents d ON d.id = f.document_id"
        " WHERE f.source_id=$1 AND (f.status IN ('failed', 'skipped') OR d.status = 'failed')"
        " ORDER BY f.status = 'skipped', f.relpath LIMIT $2",
        source_id,
        limit,
    )
    return [Problem(**dict(row)) for row in rows]


async def document_ids(pool: Db, source_id: UUID) -> list[tuple[str, UUID]]:
    rows = await pool.fetch(
        "SELECT relpath, document_id FROM source_files"
        " WHERE source_id=$1 AND document_id IS NOT NULL ORDER BY relpath",
        source_id,
    )
    return [(row["relpath"], row["document_id"]) for row in rows]
