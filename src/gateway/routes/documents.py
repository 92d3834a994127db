"""Uploading, listing, reading and deleting documents."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated
from uuid import UUID, uuid4

import structlog
from fastapi import APIRouter, File, Query, Response, UploadFile, status

from gateway.deps import CurrentUser, GatewayDep, RequestId
from gateway.models import DocumentOut
from gateway.state import Gateway
from gateway.users import User
from shared import documents
from shared.blobs import blob_key
from shared.cache import bump_corpus_generation
from shared.documents import Document
from shared.errors import InvalidInput, NotFound, UnsupportedDocument
from shared.events import IngestRequest, utcnow
from shared.formats import SUPPORTED_SUFFIXES, describe_supported
from shared.kafka import publish

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/documents", tags=["documents"])


MAX_CONTENT_TYPE = 255


# What the ingest worker can parse; checked here so a bad upload fails fast.
def _check_filename(filename: str | None) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
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


async def _store(gateway: Gateway, user: User, file: UploadFile, doc_id: UUID) -> Document:
    filename = _check_filename(file.filename)
    content_type = _check_content_type(file.content_type)
    key = blob_key(user.tenant_id, doc_id)
    stored = await gateway.clients.blobs.put(
        key, file.file, gateway.clients.settings.max_upload_bytes
    )
    if stored.size_bytes == 0:
        await gateway.clients.blobs.delete(key)
        raise InvalidInput("the file is empty")
    now = utcnow()
    return Document(
        id=doc_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        filename=filename,
        content_type=content_type,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        blob_key=key,
        status="queued",
        chunks=0,
        error=None,
        created_at=now,
        updated_at=now,
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=DocumentOut)
async def upload(
    gateway: GatewayDep,
    user: CurrentUser,
    request_id: RequestId,
    file: Annotated[UploadFile, File(description="A document: " + describe_supported())],
) -> DocumentOut:
    doc = await _store(gateway, user, file, uuid4())
    await documents.insert(gateway.clients.pool, doc)
    event = IngestRequest(
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
    try:
        await publish(
            gateway.clients.broker, gateway.clients.topics.ingest_requests, event, key=doc.id
        )
    except Exception:
        # Not queued means not accepted: leave nothing behind.
        await documents.delete(gateway.clients.pool, doc.tenant_id, doc.user_id, doc.id)
        await gateway.clients.blobs.delete(doc.blob_key)
        raise
    log.info("Document queued", document_id=str(doc.id), size_bytes=doc.size_bytes)
    return DocumentOut(**asdict(doc))


@router.get("", response_model=list[DocumentOut])
async def list_documents(
    gateway: GatewayDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DocumentOut]:
    docs = await documents.list_for(
        gateway.clients.pool, user.tenant_id, user.id, limit=limit, offset=offset
    )
    return [DocumentOut(**asdict(d)) for d in docs]


@router.get("/{document_id}", response_model=DocumentOut)
async def get_document(gateway: GatewayDep, user: CurrentUser, document_id: UUID) -> DocumentOut:
    doc = await documents.get(gateway.clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    return DocumentOut(**asdict(doc))


@router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(gateway: GatewayDep, user: CurrentUser, document_id: UUID) -> Response:
    clients = gateway.clients
    if await documents.get(clients.pool, user.tenant_id, user.id, document_id) is None:
        raise NotFound("document not found")
    # Chunks first, so a failure here leaves the document whole and retryable.
    await clients.vectors.delete_document(user.tenant_id, user.id, document_id)
    doc = await documents.delete(clients.pool, user.tenant_id, user.id, document_id)
    if doc is None:
        raise NotFound("document not found")
    # Again: a worker finishing this document meanwhile may have added some.
    await clients.vectors.delete_document(user.tenant_id, user.id, document_id)
    await clients.blobs.delete(doc.blob_key)
    await bump_corpus_generation(clients.redis, user.tenant_id)
    log.info("Document deleted", document_id=str(document_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
