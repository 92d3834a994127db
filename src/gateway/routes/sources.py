"""Folder-sync sources, by the tenant's admins: add one, follow its runs
and the files that failed, ask for a run now, remove it.

A source's path reads files on the servers' disks, so only a tenant's
admins add sources, and only under the operator's ``SYNC_ROOTS``
(``shared.source_rules``). Every query is scoped to the caller's tenant in
SQL: another tenant's source id answers 404 like an unknown one. The runs
themselves are the sync workers' (``sync``); these routes only read and
schedule them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, status

from gateway.http.deps import Admin, GatewayDep, client_ip, json_body
from gateway.http.openapi import errors, json_body_schema, link
from gateway.identity import audit
from gateway.identity.users import User
from gateway.models import (
    SourceCreate,
    SourceDetailOut,
    SourceOut,
    SourceProblemOut,
    SourceRunOut,
)
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.source_rules import check_path, check_patterns
from shared.storage import groups, sources
from shared.storage.documents import Db
from shared.storage.sources import NewSource, Run, Source

router = APIRouter(
    prefix="/api/sources",
    tags=["sources"],
    responses=errors((Forbidden, "The caller is not an administrator of their tenant")),
)
ClientIp = Annotated[str | None, Depends(client_ip)]
_NO_SUCH_SOURCE = (NotFound, "No such source in the caller's tenant")
_THIS_SOURCE = {"source_id": "$response.body#/id"}
_SOURCE_LINKS = {
    "GetSource": link("get_source", "Follow its runs and failed files", **_THIS_SOURCE),
    "RunSource": link("run_source", "Sync it now", **_THIS_SOURCE),
    "RemoveSource": link("remove_source", "Remove it", **_THIS_SOURCE),
}
RESERVED_META = ("source", "path")
PROBLEMS_SHOWN = 200
RUNS_SHOWN = 10


def _run(run: Run | None) -> SourceRunOut | None:
    if run is None:
        return None
    return SourceRunOut(
        id=run.id,
        worker=run.worker,
        started_at=run.started_at,
        finished_at=run.finished_at,
        outcome=run.outcome,
        error=run.error,
        files_total=run.files_total,
        files_done=run.files_done,
        counts=run.counts,
    )


def _state(source: Source) -> str:
    if source.removing_at is not None:
        return "removing"
    held = source.lease_until is not None and source.lease_until > datetime.now(UTC)
    return "running" if held else "idle"


async def _outs(pool: Db, found: list[Source]) -> list[SourceOut]:
    ids = [s.id for s in found]
    runs = await sources.latest_runs(pool, ids)
    counts = await sources.file_counts(pool, ids)
    names = await groups.names_by_id(pool, {g for s in found for g in s.group_ids})
    outs = []
    for source in found:
        latest = runs.get(source.id, [])
        current = next((r for r in latest if r.outcome == "running"), None)
        last = next((r for r in latest if r.outcome != "running"), None)
        state = _state(source)
        outs.append(
            SourceOut(
                id=source.id,
                name=source.name,
                path=source.path,
                include=source.include,
                exclude=source.exclude,
                max_bytes=source.max_bytes,
                visibility=source.visibility,
                groups=[names[g] for g in source.group_ids if g in names],
                tags=source.tags,
                meta=source.meta,
                interval_seconds=source.interval_seconds,
                owner_id=source.user_id,
                created_at=source.created_at,
                next_run_at=source.next_run_at,
                state=state,
                # A run marked running whose worker died is not going on.
                current_run=_run(current) if state == "running" else None,
                last_run=_run(last),
                files=counts.get(source.id, {}),
            )
        )
    return outs


async def _groups_of(pool: Db, admin: User, body: SourceCreate) -> list[UUID]:
    """The ids of the groups the source shares with (an admin may name any
    of the tenant's), or ``InvalidInput`` for groups without visibility
    ``groups`` or the other way round."""
    if (body.visibility == "groups") != bool(body.groups):
        raise InvalidInput("visibility 'groups' goes with `groups`, and `groups` only with it")
    if not body.groups:
        return []
    return await groups.shareable(pool, admin.tenant_id, admin.id, body.groups, admin=True)


async def _one(pool: Db, admin_tenant: UUID, source_id: UUID) -> Source:
    source = await sources.get(pool, admin_tenant, source_id)
    if source is None:
        raise NotFound("no such source")
    return source


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SourceOut,
    openapi_extra=json_body_schema(SourceCreate),
    responses={
        **errors(
            (
                InvalidInput,
                "A path that is not absolute or has `..`, reserved metadata keys, or groups"
                " the tenant has none of (or without visibility `groups`)",
            ),
            (Forbidden, "Folder sync is off (no SYNC_ROOTS), or the path is not under them"),
            (Conflict, "The tenant has a source of that name"),
        ),
        201: {"links": _SOURCE_LINKS},
    },
)
async def add_source(
    gateway: GatewayDep,
    admin: Admin,
    body: Annotated[SourceCreate, Depends(json_body(SourceCreate))],
    ip: ClientIp = None,
) -> SourceOut:
    """Register a folder to sync; the first run starts as soon as a sync
    worker is free. Its documents are owned by the caller."""
    settings = gateway.clients.settings
    reserved = sorted(set(body.meta) & set(RESERVED_META))
    if reserved:
        raise InvalidInput(f"metadata keys {reserved} are the sync's own (source, path)")
    path = check_path(body.path, settings.sync_roots)
    pool = gateway.clients.pool
    group_ids = await _groups_of(pool, admin, body)
    new = NewSource(
        tenant_id=admin.tenant_id,
        user_id=admin.id,
        name=body.name,
        path=path,
        include=check_patterns(body.include, "include"),
        exclude=check_patterns(body.exclude, "exclude"),
        max_bytes=min(body.max_bytes or settings.max_upload_bytes, settings.max_upload_bytes),
        visibility=body.visibility,
        tags=list(dict.fromkeys(body.tags)),
        meta=body.meta,
        interval_seconds=body.interval_seconds or settings.sync_interval_seconds,
        group_ids=group_ids,
    )
    async with pool.acquire() as conn, conn.transaction():
        source = await sources.create(conn, new)
        await audit.record(
            conn,
            tenant_id=admin.tenant_id,
            actor_id=admin.id,
            action="source.added",
            target=source.id,
            detail={"name": source.name, "path": source.path},
            ip=ip,
        )
    return (await _outs(pool, [source]))[0]


@router.get("", response_model=list[SourceOut])
async def list_sources(gateway: GatewayDep, admin: Admin) -> list[SourceOut]:
    """The tenant's sources, by name, each with its current and last run."""
    pool = gateway.clients.pool
    return await _outs(pool, await sources.in_tenant(pool, admin.tenant_id))


@router.get("/{source_id}", response_model=SourceDetailOut, responses=errors(_NO_SUCH_SOURCE))
async def get_source(gateway: GatewayDep, admin: Admin, source_id: UUID) -> SourceDetailOut:
    """The source, the progress of its current run, its last runs, and the
    files that failed or were skipped, with the reason."""
    pool = gateway.clients.pool
    source = await _one(pool, admin.tenant_id, source_id)
    out = (await _outs(pool, [source]))[0]
    problems = await sources.problems(pool, source.id, PROBLEMS_SHOWN)
    runs = await sources.runs_of(pool, source.id, RUNS_SHOWN)
    return SourceDetailOut(
        **out.model_dump(),
        problems=[
            SourceProblemOut(
                path=p.relpath,
                status=p.status,
                reason=p.reason,
                failures=p.failures,
                document_id=p.document_id,
            )
            for p in problems
        ],
        runs=[r for r in map(_run, runs) if r is not None],
    )


@router.post(
    "/{source_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SourceOut,
    responses=errors(_NO_SUCH_SOURCE),
)
async def run_source(
    gateway: GatewayDep, admin: Admin, source_id: UUID, ip: ClientIp = None
) -> SourceOut:
    """Sync now: the source is due at once (a run going on finishes first,
    then another starts)."""
    pool = gateway.clients.pool
    if not await sources.request_run(pool, admin.tenant_id, source_id):
        raise NotFound("no such source")
    await audit.record(
        pool,
        tenant_id=admin.tenant_id,
        actor_id=admin.id,
        action="source.run_requested",
        target=source_id,
        ip=ip,
    )
    return (await _outs(pool, [await _one(pool, admin.tenant_id, source_id)]))[0]


@router.delete(
    "/{source_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SourceOut,
    responses=errors(_NO_SUCH_SOURCE),
)
async def remove_source(
    gateway: GatewayDep,
    admin: Admin,
    source_id: UUID,
    keep_documents: Annotated[
        bool,
        Query(
            description="Keep the source's documents (they become ordinary documents of its"
            " owner); by default they are deleted with it"
        ),
    ] = False,
    ip: ClientIp = None,
) -> SourceOut:
    """Remove the source: a sync worker deletes its documents (unless
    kept) and then the source; until then it is listed as `removing`."""
    pool = gateway.clients.pool
    source = await _one(pool, admin.tenant_id, source_id)
    if not await sources.mark_removing(pool, admin.tenant_id, source_id, keep=keep_documents):
        raise NotFound("no such source")
    await audit.record(
        pool,
        tenant_id=admin.tenant_id,
        actor_id=admin.id,
        action="source.removed",
        target=source_id,
        detail={"keep_documents": keep_documents},
        ip=ip,
    )
    # As marked (a worker may remove the row any moment now).
    marked = replace(source, removing_at=datetime.now(UTC), keep_documents=keep_documents)
    return (await _outs(pool, [marked]))[0]
