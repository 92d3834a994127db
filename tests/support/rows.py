"""Document rows for tests that write to PostgreSQL directly: every field a
plausible value, any of them overridden by name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.storage.blobs import blob_key
from shared.storage.documents import Document


def document_row(
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
    *,
    age_seconds: float = 0.0,
    **fields: Any,
) -> Document:
    """An indexed text document of ``user_id`` (default: the user whose id
    is the tenant's), created and last changed ``age_seconds`` ago."""
    doc_id = fields.pop("id", None) or uuid.uuid4()
    then = datetime.now(UTC) - timedelta(seconds=age_seconds)
    values: dict[str, Any] = {
        "id": doc_id,
        "tenant_id": tenant_id,
        "user_id": user_id or tenant_id,
        "filename": "notes.txt",
        "content_type": "text/plain",
        "size_bytes": 9,
        "sha256": "0" * 64,
        "blob_key": blob_key(tenant_id, doc_id),
        "status": "indexed",
        "chunks": 0,
        "error": None,
        "created_at": then,
        "updated_at": then,
    }
    return Document(**{**values, **fields})
