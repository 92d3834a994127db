"""Uploading, listing, reading, sharing and deleting documents.

A document is private to its owner until the owner shares it with the tenant
(``PATCH {"visibility": "tenant"}``) or with some of its groups
(``{"visibility": "groups", "groups": [...]}``, groups the owner is in; an
admin: any of the tenant's). Those it is shared with then list, read and
search it; only the owner changes or deletes it. Uploads count against
the tenant's quotas (documents, bytes), checked before anything is written.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Annotated, Any, BinaryIO, TypeVar
from uuid import UUID

import structlog
from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile, status
from pydantic import ValidationError

from gateway.http.deps import CurrentUser, GatewayDep, RequestId, client_ip, json_body
from gateway.http.openapi import SIGNED_IN, errors, json_body_schema, link
from gateway.identity import audit
from gateway.identity.users import User
from gateway.models import DocumentOut, DocumentPatch
from shared.contracts.labels import META_RULE, TAG_RULE, Labels, meta_from_form, tags_from_form
from shared.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unavailable,
    UnsupportedDocument,
)
from shared.formats import describe_supported
from shared.intake import Intake, new_document
from shared.intake.changes import discard
from shared.runtime.clients import Clients
from shared.storage import documents, groups
from shared.storage.cache import bump_answer_generation
from shared.storage.documents import Conn, Document, Lane, Visibility

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/documents", tags=["documents"])
T = TypeVar("T")
ClientIp = Annotated[str | None, Depends(client_ip)]


# PostgreSQL's OFFSET is a bigint.
MAX_OFFSET = 2**63 - 1

# Tasks that must outlive the request that started them; held here so they
# are not garbage-collected while they run.
_DETACHED: set[asyncio.Task[Any]] = set()


def _detach(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    task = asyncio.create_task(work)
    _DETACHED.add(task)
    task.add_done_callback(_DETACHED.discard)
    return task


class _Abandoned(Exception):
    """The request went away while its upload was being stored."""


def _stop_if(gone: asyncio.Event) -> Callable[[], None]:
    def checkpoint() -> None:
        if gone.is_set():
            raise _Abandoned

    return checkpoint


def _audited(intake: Intake, ip: str | None) -> Callable[[Document], Awaitable[None]]:
    async def record(doc: Document) -> None:
        detail = {"filename": doc.filename, "size_bytes": doc.size_bytes}
        await audit.record(
            intake.pool,
            tenant_id=doc.tenant_id,
            actor_id=doc.user_id,
            action="document.uploaded",
            target=doc.id,
            detail=detail,
            ip=ip,
        )

    return record


def _measure(source: BinaryIO) -> int:
    source.seek(0, os.SEEK_END)
    size = source.tell()
    source.seek(0)
    return size


def _out(doc: Document, user: User, names: dict[UUID, list[str]] | None = None) -> DocumentOut:
    shared_with = (names or {}).get(doc.id, []) if doc.visibility == "groups" else []
    return DocumentOut(**asdict(doc), mine=doc.user_id == user.id, groups=shared_with)


async def _out_one(clients: Clients, doc: Document, user: User) -> DocumentOut:
    """The document as the API shows it, with the names of its groups."""
    return _out(doc, user, await groups.names_of_documents(clients.pool, [doc.id]))


_NOT_FOUND = (NotFound, "No such document that the caller may read")
_NOT_OWNER = (Forbidden, "The document is shared with the caller, not theirs")
_BAD_SHARE = (
    InvalidInput,
    "Visibility `groups` without groups, groups with another visibility, or a group name"
    " the caller's tenant has no group of",
)
_NOT_IN_GROUP = (Forbidden, "A group the caller is not in (only admins share with any group)")
_THIS_DOCUMENT = {"document_id": "$response.body#/id"}
# What to do next with an uploaded document, for clients and stateful tests.
_UPLOADED_LINKS = {
    "GetDocument": link("get_document", "Follow its status", **_THIS_DOCUMENT),
    "SetVisibility": link("set_visibility", "Share it, or make it private", **_THIS_DOCUMENT),
    "DeleteDocument": link("delete_document", "Delete it", **_THIS_DOCUMENT),
}
_UPLOAD_ERRORS = errors(
    *SIGNED_IN,
    (
        InvalidInput,
        "No file name, one with control characters, an empty file, an unprintable"
        " Content-Type, tags or metadata that break their rules, or a body that is not"
        " multipart form data",
    ),
    (UnsupportedDocument, "A file name whose suffix is not a supported kind of document"),
    _BAD_SHARE,
    (Forbidden, "The tenant's document or storage quota is reached"),
    _NOT_IN_GROUP,
    (PayloadTooLarge, "The file is over MAX_UPLOAD_MB"),
    (TooManyRequests, "MAX_CONCURRENT_UPLOADS of the user's are running"),
    (Unavailable, "The gateway is receiving too many uploads (UPLOAD_SPOOL_MB)"),
)


# The file part's name is what says the document's kind: documented on the
# part (clients and fuzzers send it as the example shows).
_FILE_PART = {
    "headers": {
        "Content-Disposition": {
            "description": "The file name's suffix says what kind of document it is: "
            + describe_supported(),
            "schema": {"type": "string"},
            "example": 'form-data; name="file"; filename="notes.txt"',
        }
    }
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentOut,
    responses={**_UPLOAD_ERRORS, 202: {"links": _UPLOADED_LINKS}},
    openapi_extra={
        "requestBody": {"content": {"multipart/form-data": {"encoding": {"file": _FILE_PART}}}}
    },
)
async def upload(
    gateway: GatewayDep,
    user: CurrentUser,
    request_id: RequestId,
    file: Annotated[
        UploadFile,
        # format: binary as well as OpenAPI 3.1's contentMediaType: what
        # generated clients (openapi-python-client) read as a file part.
        File(
            description="A document: " + describe_supported(),
            json_schema_extra={"format": "binary"},
        ),
    ],
    lane: Annotated[
        Lane,
        Form(
            description="`bulk` for an import: the tenant's interactive uploads are"
            " indexed first (docs/architecture.md, Fair ingestion)"
        ),
    ] = "interactive",
    tags: Annotated[
        list[str] | None,
        Form(
            description="Tags: repeat the field for each (`-F tags=finance -F tags=2026`), or"
            f" separate them with commas, or send a JSON array; {TAG_RULE}. A tag that breaks"
            " the rule is refused with 400"
        ),
    ] = None,
    meta: Annotated[
        list[str] | None,
        Form(
            description="Metadata: repeat the field for each entry as `key=value`"
            " (`-F meta=team=infra`), or send a JSON object of strings"
            f' (`-F \'meta={{"team": "infra"}}\'`); {META_RULE}. 400 otherwise'
        ),
    ] = None,
    visibility: Annotated[
        Visibility,
        Form(
            description="private (the default), groups (with `groups`; implied by them) or"
            " tenant: who may read it besides the owner"
        ),
    ] = "private",
    groups_: Annotated[
        list[str] | None,
        Form(
            alias="groups",
            description="With visibility `groups`: the names of the groups to share it with"
            " (repeat the field, separate with commas, or send a JSON array); groups the"
            " uploader is in (an admin: any of the tenant's). 400 for a name the tenant has no"
            " group of, 403 for a group the uploader is not in",
        ),
    ] = None,
    ip: ClientIp = None,
) -> DocumentOut:
    labels = _labels(tags or [], meta or [])
    names = _group_names(groups_ or [])
    # A form cannot leave a field out and send its default: groups given with
    # the default visibility mean visibility groups.
    share = _share(None if visibility == "private" and names else visibility, names)
    if share.names:  # refused before anything is written
        await groups.shareable(
            gateway.clients.pool, user.tenant_id, user.id, share.names, admin=user.is_admin
        )
    size = file.size if file.size is not None else _measure(file.file)
    doc = new_document(
        user.tenant_id,
        user.id,
        filename=file.filename,
        content_type=file.content_type,
        size_bytes=size,
        limit_bytes=gateway.clients.settings.max_upload_bytes,
        lane=lane,
        tags=labels.tags,
        meta=labels.meta,
    )
    intake = Intake.of(gateway.clients)
    await intake.admit(doc)  # before a byte is written
    # The writes run in a task of their own: cancelling this request (the
    # client went away) must not stop them halfway, with a blob written by a
    # thread that cannot be cancelled and nobody left to remove it.
    gone = asyncio.Event()
    stored = intake.store(
        doc, file.file, request_id, checkpoint=_stop_if(gone), accepted=_audited(intake, ip)
    )
    work = _detach(stored)
    try:
        accepted = await asyncio.shield(work)
    except asyncio.CancelledError:
        # Nobody will see a 202: undo the upload once the writes are done.
        gone.set()
        gateway.spawn(_undo_when_done(intake, doc, work))  # drained at shutdown
        raise
    log.info("Document queued", document_id=str(doc.id), size_bytes=accepted.size_bytes)
    if share.visibility == "private":
        return _out(accepted, user)
    try:
        shared = await _apply_share(gateway.clients, user, doc.id, share, ip)
    except (InvalidInput, Forbidden, NotFound):
        # A group deleted (or left) since the check: nothing half-shared is kept.
        await intake.remove(doc, row=True)
        raise
    return await _out_one(gateway.clients, shared, user)


@dataclass(frozen=True)
class _Share:
    visibility: Visibility
    names: list[str]


def _share(visibility: Visibility | None, names: list[str] | None) -> _Share:
    """Who a document is shared with, as a request says it, or 400 saying
    why not: groups come with visibility ``groups`` and it needs them (given
    alone, groups imply it)."""
    if names and visibility is None:
        visibility = "groups"
    if visibility == "groups" and not names:
        raise InvalidInput("visibility 'groups' needs `groups`: the groups to share it with")
    if names and visibility != "groups":
        raise InvalidInput(f"`groups` go with visibility 'groups', not {visibility!r}")
    return _Share(visibility or "private", list(names or []))


def _group_names(values: list[str]) -> list[str]:
    """Group names from an upload's form fields (like tags: repeated, comma
    separated, or a JSON array), or 400."""
    try:
        names = tags_from_form(values)
        return [groups.clean_name(name) for name in names]
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _labels(tags: list[str], meta: list[str]) -> Labels:
    """An upload's tags and metadata from its form fields, or 400 saying why."""
    try:
        return Labels.model_validate({"tags": tags_from_form(tags), "meta": meta_from_form(meta)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise InvalidInput(f"{problems[:500]} ({TAG_RULE}; meta: {META_RULE})") from None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


async def _undo_when_done(intake: Intake, doc: Document, work: asyncio.Task[Document]) -> None:
    # A failed upload removed what it had written itself; one that finished
    # before it noticed the client leaving is removed here.
    if not await _failed(work):
        await intake.remove(doc, row=True)
    log.info("Upload cancelled by the client; nothing kept", document_id=str(doc.id))


async def _failed(work: asyncio.Task[Document]) -> bool:
    """Whether ``work`` failed (its outcome was reported where it happened)."""
    await asyncio.wait([work])
    return work.cancelled() or work.exception() is not None


@router.get("", response_model=list[DocumentOut])
async def list_documents(
    gateway: GatewayDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[DocumentOut]:
    """The caller's documents and those shared with their tenant or with a
    group they are in (``mine`` tells them apart), newest first."""
    pool = gateway.clients.pool
    docs = await documents.list_for(pool, user.tenant_id, user.id, limit=limit, offset=offset)
    names = await groups.names_of_documents(pool, [d.id for d in docs if d.visibility == "groups"])
    return [_out(d, user, names) for d in docs]


@router.get("/{document_id}", response_model=DocumentOut, responses=errors(_NOT_FOUND))
async def get_document(gateway: GatewayDep, user: CurrentUser, document_id: UUID) -> DocumentOut:
    doc = await documents.readable(gateway.clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    return await _out_one(gateway.clients, doc, user)


@router.patch(
    "/{document_id}",
    response_model=DocumentOut,
    openapi_extra=json_body_schema(DocumentPatch),
    responses=errors(_BAD_SHARE, _NOT_FOUND, _NOT_OWNER, _NOT_IN_GROUP),
)
async def set_visibility(
    gateway: GatewayDep,
    user: CurrentUser,
    document_id: UUID,
    body: Annotated[DocumentPatch, Depends(json_body(DocumentPatch))],
    ip: ClientIp = None,
) -> DocumentOut:
    """Share the document with the tenant or with groups, or make it private
    again, and/or replace its tags or metadata. Only the owner may; the change
    applies to search at once (the chunks follow in both indexes before the
    answer)."""
    clients = gateway.clients
    share = _share(body.visibility, body.groups) if body.visibility or body.groups else None
    await documents.owned(clients.pool, user.tenant_id, user.id, document_id)
    if share is not None:
        await _apply_share(clients, user, document_id, share, ip)
    if body.tags is not None or body.meta is not None:
        await _set_row_labels(clients, user, document_id, body, ip)
        doc = await documents.get(clients.pool, user.tenant_id, user.id, document_id)
        if doc is None:
            raise NotFound("document not found")
        await documents.sync_labels(clients.pool, clients.vectors, doc)
        await bump_answer_generation(clients.pool, user.tenant_id)
    doc = await documents.get(clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    log.info("Document visibility set", document_id=str(document_id), visibility=doc.visibility)
    return await _out_one(clients, doc, user)


async def _apply_share(
    clients: Clients, user: User, document_id: UUID, share: _Share, ip: str | None
) -> Document:
    """The row (with its groups and audit entry) first, then the chunks, even
    when the row did not change: a PATCH repeated after a failed one
    completes it. The lexical index reads visibility and groups from the rows;
    only the vector store holds copies (visibility, one key per group)."""
    await _set_row_visibility(clients, user, document_id, share, ip)
    doc = await documents.get(clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    await documents.sync_visibility(clients.pool, clients.vectors, doc)
    await documents.sync_labels(clients.pool, clients.vectors, doc)
    # The row's triggers outdated cached answers, but one computed before the
    # chunks above followed may have been cached since. Not best-effort: on
    # a failure the PATCH fails, and repeating it completes it.
    await bump_answer_generation(clients.pool, user.tenant_id)
    return doc


_SHARE_ACTIONS: dict[Visibility, audit.Action] = {
    "tenant": "document.shared",
    "groups": "document.shared_with_groups",
    "private": "document.unshared",
}


async def _set_row_visibility(
    clients: Clients, user: User, document_id: UUID, share: _Share, ip: str | None
) -> None:
    """The row, its groups and its audit entry, together (a repeat is not
    audited). The groups are checked in the same transaction, so one deleted
    meanwhile is refused, never half-linked."""
    async with clients.pool.acquire() as conn, conn.transaction():
        group_ids = (
            await groups.shareable(conn, user.tenant_id, user.id, share.names, admin=user.is_admin)
            if share.visibility == "groups"
            else []
        )
        before = await documents.set_visibility(
            conn, user.tenant_id, user.id, document_id, share.visibility
        )
        if before is None:
            raise NotFound("document not found")  # deleted meanwhile
        regrouped = await groups.set_document_groups(conn, user.tenant_id, document_id, group_ids)
        if before != share.visibility or regrouped:
            detail = {"groups": share.names} if share.visibility == "groups" else None
            await audit.record(
                conn,
                tenant_id=user.tenant_id,
                actor_id=user.id,
                action=_SHARE_ACTIONS[share.visibility],
                target=document_id,
                ip=ip,
                detail=detail,
            )


async def _set_row_labels(
    clients: Clients, user: User, document_id: UUID, body: DocumentPatch, ip: str | None
) -> None:
    """The row, its BM25 chunk rows and the audit entry, together."""
    tags = list(dict.fromkeys(body.tags)) if body.tags is not None else None
    async with clients.pool.acquire() as conn, conn.transaction():
        if not await documents.set_labels(
            conn, user.tenant_id, user.id, document_id, tags, body.meta
        ):
            raise NotFound("document not found")  # deleted meanwhile
        changed = {"tags": tags, "meta": body.meta}
        await audit.record(
            conn,
            tenant_id=user.tenant_id,
            actor_id=user.id,
            action="document.labelled",
            target=document_id,
            ip=ip,
            detail={key: value for key, value in changed.items() if value is not None},
        )


@router.delete(
    "/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(_NOT_FOUND, _NOT_OWNER),
)
async def delete_document(
    gateway: GatewayDep, user: CurrentUser, document_id: UUID, ip: ClientIp = None
) -> Response:
    clients = gateway.clients
    doc = await documents.owned(clients.pool, user.tenant_id, user.id, document_id)

    async def audited(conn: Conn, gone: Document) -> None:
        await audit.record(
            conn,
            tenant_id=user.tenant_id,
            actor_id=user.id,
            action="document.deleted",
            target=document_id,
            ip=ip,
            detail={"filename": gone.filename},
        )

    # The same steps as a document whose synced file vanished (shared.intake.changes).
    if (
        await discard(clients.pool, clients.vectors, clients.blobs, doc, in_transaction=audited)
        is None
    ):
        raise NotFound("document not found")
    log.info("Document deleted", document_id=str(document_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
