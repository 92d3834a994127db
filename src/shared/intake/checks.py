"""What a document must be before a byte of it is written: the rules of
every door, so that the same bad input gets the same refusal through each."""

from __future__ import annotations

import unicodedata
from uuid import UUID, uuid4

from shared.contracts.events import utcnow
from shared.errors import InvalidInput, PayloadTooLarge, UnsupportedDocument
from shared.formats import SUPPORTED_SUFFIXES, describe_supported
from shared.storage.blobs import blob_key
from shared.storage.documents import Document, Lane, Visibility

MAX_FILENAME = 255
MAX_CONTENT_TYPE = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def check_filename(raw: str | None) -> str:
    """The name to keep: its last path part (browsers and tools send
    ``C:\\fakepath\\a.pdf`` or ``dir/a.pdf``), of a type the workers parse."""
    raw = raw or ""
    # Before the path is cut: a NUL could hide what precedes it, and no
    # control character belongs in a name shown back to people.
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise InvalidInput("the file name must not contain control characters")
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or len(name) > MAX_FILENAME:
        raise InvalidInput(f"the upload needs a file name of 1 to {MAX_FILENAME} characters")
    if not name.lower().endswith(SUPPORTED_SUFFIXES):
        kinds = describe_supported()
        raise UnsupportedDocument(f"unsupported file type {name!r}; supported: {kinds}")
    return name


def check_content_type(raw: str | None) -> str:
    """The declared type, kept as sent (the request event carries it too)."""
    value = (raw or DEFAULT_CONTENT_TYPE).strip()
    if len(value) > MAX_CONTENT_TYPE or not value.isprintable():
        raise InvalidInput(
            f"the file's Content-Type must be printable and at most {MAX_CONTENT_TYPE} characters"
        )
    return value


def check_size(size_bytes: int, limit_bytes: int) -> None:
    if size_bytes == 0:
        raise InvalidInput("the file is empty")
    if size_bytes > limit_bytes:
        raise PayloadTooLarge(f"file is larger than {limit_bytes // (1024 * 1024)} MB")


def new_document(
    tenant_id: UUID,
    user_id: UUID,
    *,
    filename: str | None,
    content_type: str | None,
    size_bytes: int,
    limit_bytes: int,
    visibility: Visibility = "private",
    lane: Lane = "interactive",
    doc_id: UUID | None = None,
    tags: list[str] | None = None,
    meta: dict[str, str] | None = None,
) -> Document:
    """The row to store, or the reason it is refused (``InvalidInput``,
    ``UnsupportedDocument``, ``PayloadTooLarge``)."""
    name = check_filename(filename)
    kind = check_content_type(content_type)
    check_size(size_bytes, limit_bytes)
    doc_id = doc_id or uuid4()
    now = utcnow()
    return Document(
        id=doc_id,
        tenant_id=tenant_id,
        user_id=user_id,
        filename=name,
        content_type=kind,
        size_bytes=size_bytes,
        sha256="",  # known once stored
        blob_key=blob_key(tenant_id, doc_id),
        status="queued",
        chunks=0,
        error=None,
        created_at=now,
        updated_at=now,
        visibility=visibility,
        lane=lane,
        tags=list(tags or []),
        meta=dict(meta or {}),
    )
