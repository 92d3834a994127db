"""Uploading, listing, reading, sharing and deleting documents.

A document is private to its owner until the owner shares it with the tenant
(``PATCH {"visibility": "tenant"}``). Anyone in the tenant then lists, reads
and searches it; only the owner changes or deletes it. Uploads count against
the tenant's quotas (documents, bytes), checked before anything is written.
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Awaitable, Coroutine
from dataclasses import asdict, replace
from typing import Annotated, Any, BinaryIO, TypeVar
from uuid import UUID, uuid4

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, File, Query, Response, UploadFile, status

from gateway import audit
from gateway.deps import (
    CurrentUser,
    GatewayDep,
    RequestId,
    client_ip,
    json_body,
    json_body_schema,
)
from gateway.doc_events import announce_queued
from gateway.models import DocumentOut, VisibilityBody
from gateway.state import Gateway
from gateway.users import User
from shared.contracts.events import IngestRequest, utcnow
from shared.errors import InvalidInput, NotFound, PayloadTooLarge, Unavailable, UnsupportedDocument
from shared.formats import SUPPORTED_SUFFIXES, describe_supported
from shared.runtime.clients import Clients
from shared.runtime.kafka import publish
from shared.storage import documents
from shared.storage.blobs import blob_key
from shared.storage.cache import bump_answer_generation
from shared.storage.documents import Document, Quota, Visibility

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/documents", tags=["documents"])
T = TypeVar("T")
ClientIp = Annotated[str | None, Depends(client_ip)]


MAX_CONTENT_TYPE = 255
# PostgreSQL's OFFSET is a bigint.
MAX_OFFSET = 2**63 - 1


# What the ingest worker can parse; checked here so a bad upload fails fast.
def _check_filename(filename: str | None) -> str:
    raw = filename or ""
    # Before the path is cut: a NUL could hide what precedes it, and no
    # control character belongs in a name shown back to people.
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise InvalidInput("the file name must not contain control characters")
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > 255:
        raise InvalidInput("the upload needs a file name of 1 to 255 characters")
    if not name.lower().endswith(SUPPORTED_SUFFIXES):
        kinds = describe_supported()
        raise UnsupportedDocument(f"unsupported file type {name!r}; supported: {kinds}")
    return name


def _check_content_type(content_type: str | None) -> str:
    value = (content_type or "application/octet-stream").strip()
    # Checked before anything is written: the request event carries it too.
    if len(value) > MAX_CONTENT_TYPE or not value.isprintable():
        raise InvalidInput(
            f"the file's Content-Type must be printable and at most {MAX_CONTENT_TYPE} characters"
        )
    return value


# Failures of the stores an upload writes to: the client may retry.
_STORE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    KafkaError,
)
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


async def _accept(
    clients: Clients,
    doc: Document,
    source: BinaryIO,
    request_id: str,
    gone: asyncio.Event,
    ip: str | None = None,
) -> Document:
    """Blob, row, ingest request, audit entry; on any failure, none of the
    first three. ``gone``: the client left, so stop at the next step and undo."""
    inserted = False
    try:
        stored = await clients.blobs.put(doc.blob_key, source, clients.settings.max_upload_bytes)
        doc = replace(doc, size_bytes=stored.size_bytes, sha256=stored.sha256)
        _stop_if(gone)
        # The quota again, under a per-tenant lock: concurrent uploads passed
        # the first check together; only those that fit get a row.
        await documents.insert_within_quota(clients.pool, doc, Quota.of(clients.settings))
        inserted = True
        _stop_if(gone)
        await announce_queued(clients, doc, request_id)  # before the request: in order
        await publish(clients.broker, clients.topics.ingest_requests, _request(doc, request_id),
                      key=doc.id)  # fmt: skip
        # Accepted only once audited: a document no entry accounts for is undone.
        await _audit_upload(clients, doc, ip)
    except BaseException as exc:
        # Not queued means not accepted: leave nothing behind.
        await _remove_upload(clients, doc, row=inserted)
        if isinstance(exc, _STORE_ERRORS):
            log.warning("Upload not stored", document_id=str(doc.id), error=_describe(exc))
            raise Unavailable("the document could not be stored; try again shortly") from exc
        raise
    return doc


async def _audit_upload(clients: Clients, doc: Document, ip: str | None) -> None:
    detail = {"filename": doc.filename, "size_bytes": doc.size_bytes}
    await audit.record(clients.pool, tenant_id=doc.tenant_id, actor_id=doc.user_id,
                       action="document.uploaded", target=doc.id, detail=detail, ip=ip)  # fmt: skip


def _stop_if(gone: asyncio.Event) -> None:
    if gone.is_set():
        raise _Abandoned


def _request(doc: Document, request_id: str) -> IngestRequest:
    return IngestRequest(
        correlation_id=request_id,
        tenant_id=doc.tenant_id,
        user_id=doc.user_id,
        document_id=doc.id,
        filename=doc.filename,
        content_type=doc.content_type,
        blob_key=doc.blob_key,
        size_bytes=doc.size_bytes,
        sha256=doc.sha256,
    )


async def _remove_upload(clients: Clients, doc: Document, *, row: bool) -> None:
    """Row first, so no row is left pointing at a missing blob when both go;
    whatever cannot be removed now is left to the reconciler."""
    if row:
        await _best_effort(
            "row", doc.id, documents.delete(clients.pool, doc.tenant_id, doc.user_id, doc.id)
        )
    await _best_effort("blob", doc.id, clients.blobs.delete(doc.blob_key))


async def _best_effort(what: str, doc_id: UUID, step: Awaitable[object]) -> None:
    """A clean-up step whose failure must not hide the outcome: logged, and
    a blob or row left behind is the reconciler's to remove."""
    try:
        await step
    except Exception as exc:
        log.warning(
            "Document clean-up step failed",
            step=what,
            document_id=str(doc_id),
            error=_describe(exc),
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _measure(source: BinaryIO) -> int:
    source.seek(0, os.SEEK_END)
    size = source.tell()
    source.seek(0)
    return size


def _checked(gateway: Gateway, user: User, file: UploadFile, doc_id: UUID) -> Document:
    """The document to store, or the reason it is refused: everything is
    checked here, before a byte is written anywhere."""
    filename = _check_filename(file.filename)
    content_type = _check_content_type(file.content_type)
    size = file.size if file.size is not None else _measure(file.file)
    if size == 0:
        raise InvalidInput("the file is empty")
    limit = gateway.clients.settings.max_upload_bytes
    if size > limit:
        raise PayloadTooLarge(f"file is larger than {limit // (1024 * 1024)} MB")
    now = utcnow()
    return Document(
        id=doc_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        filename=filename,
        content_type=content_type,
        size_bytes=size,
        sha256="",  # known once stored
        blob_key=blob_key(user.tenant_id, doc_id),
        status="queued",
        chunks=0,
        error=None,
        created_at=now,
        updated_at=now,
    )


def _out(doc: Document, user: User) -> DocumentOut:
    return DocumentOut(**asdict(doc), mine=doc.user_id == user.id)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentOut,
    responses={403: {"description": "The tenant's document or storage quota is reached"}},
)
async def upload(
    gateway: GatewayDep,
    user: CurrentUser,
    request_id: RequestId,
    file: Annotated[UploadFile, File(description="A document: " + describe_supported())],
    ip: ClientIp = None,
) -> DocumentOut:
    doc = _checked(gateway, user, file, uuid4())
    clients = gateway.clients
    # Refused before a byte is written (checked again when the row goes in).
    await documents.check_quota(clients.pool, doc.tenant_id, doc.size_bytes,
                                Quota.of(clients.settings))  # fmt: skip
    # The writes run in a task of their own: cancelling this request (the
    # client went away) must not stop them halfway, with a blob written by a
    # thread that cannot be cancelled and nobody left to remove it.
    gone = asyncio.Event()
    work = _detach(_accept(clients, doc, file.file, request_id, gone, ip))
    try:
        accepted = await asyncio.shield(work)
    except asyncio.CancelledError:
        # Nobody will see a 202: undo the upload once the writes are done.
        gone.set()
        gateway.spawn(_undo_when_done(clients, doc, work))  # drained at shutdown
        raise
    log.info("Document queued", document_id=str(doc.id), size_bytes=accepted.size_bytes)
    return _out(accepted, user)


async def _undo_when_done(clients: Clients, doc: Document, work: asyncio.Task[Document]) -> None:
    # A failed upload removed what it had written itself; one that finished
    # before it noticed the client leaving is removed here.
    if not await _failed(work):
        await _remove_upload(clients, doc, row=True)
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
    """The caller's documents and those shared with their tenant (``mine``
    tells them apart), newest first."""
    docs = await documents.list_for(
        gateway.clients.pool, user.tenant_id, user.id, limit=limit, offset=offset
    )
    return [_out(d, user) for d in docs]


@router.get("/{document_id}", response_model=DocumentOut)
async def get_document(gateway: GatewayDep, user: CurrentUser, document_id: UUID) -> DocumentOut:
    doc = await documents.readable(gateway.clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    return _out(doc, user)


@router.patch(
    "/{document_id}",
    response_model=DocumentOut,
    openapi_extra=json_body_schema(VisibilityBody),
    responses={403: {"description": "The document is shared with the caller, not theirs"}},
)
async def set_visibility(
    gateway: GatewayDep,
    user: CurrentUser,
    document_id: UUID,
    body: Annotated[VisibilityBody, Depends(json_body(VisibilityBody))],
    ip: ClientIp = None,
) -> DocumentOut:
    """Share the document with the tenant, or make it private again. Only
    the owner may; the change applies to search at once."""
    clients = gateway.clients
    await documents.owned(clients.pool, user.tenant_id, user.id, document_id)
    await _set_row_visibility(clients, user, document_id, body.visibility, ip)
    doc = await documents.get(clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    # Row first, then the chunks, even when the row did not change: a PATCH
    # repeated after a failed one completes it. (The lexical index reads the
    # row itself; only the vector store holds a copy.)
    await documents.sync_visibility(clients.pool, clients.vectors, doc)
    # The row's trigger outdated cached answers, but one computed before the
    # chunks above followed it may have been cached since. Not best-effort:
    # on a failure the PATCH fails, and repeating it completes it.
    await bump_answer_generation(clients.pool, user.tenant_id)
    log.info("Document visibility set", document_id=str(document_id), visibility=doc.visibility)
    return _out(doc, user)


async def _set_row_visibility(
    clients: Clients, user: User, document_id: UUID, visibility: Visibility, ip: str | None
) -> None:
    """The row and its audit entry, together (a repeat is not audited)."""
    async with clients.pool.acquire() as conn, conn.transaction():
        before = await documents.set_visibility(
            conn, user.tenant_id, user.id, document_id, visibility
        )
        if before is None:
            raise NotFound("document not found")  # deleted meanwhile
        if before != visibility:
            action: audit.Action = (
                "document.shared" if visibility == "tenant" else "document.unshared"
            )
            await audit.record(conn, tenant_id=user.tenant_id, actor_id=user.id, action=action,
                               target=document_id, ip=ip)  # fmt: skip


@router.delete(
    "/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"description": "The document is shared with the caller, not theirs"}},
)
async def delete_document(
    gateway: GatewayDep, user: CurrentUser, document_id: UUID, ip: ClientIp = None
) -> Response:
    clients = gateway.clients
    await documents.owned(clients.pool, user.tenant_id, user.id, document_id)
    # Chunks first, so a failure here leaves the document whole and retryable.
    await clients.vectors.delete_document(user.tenant_id, user.id, document_id)
    async with clients.pool.acquire() as conn, conn.transaction():
        doc = await documents.delete(conn, user.tenant_id, user.id, document_id)
        if doc is None:
            raise NotFound("document not found")
        await audit.record(conn, tenant_id=user.tenant_id, actor_id=user.id,
                           action="document.deleted", target=document_id, ip=ip,
                           detail={"filename": doc.filename})  # fmt: skip
    # The document is gone for the caller; what follows cannot bring it back,
    # so a failure is logged and left (the blob to the reconciler), not a 5xx.
    # Again: a worker finishing this document meanwhile may have added chunks.
    await _best_effort(
        "chunks", document_id, clients.vectors.delete_document(user.tenant_id, user.id, document_id)
    )
    await _best_effort("blob", document_id, clients.blobs.delete(doc.blob_key))
    log.info("Document deleted", document_id=str(document_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
