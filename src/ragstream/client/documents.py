"""``rag docs list`` and ``rag docs delete``."""

from __future__ import annotations

from typing import Any

from ragstream.client.errors import ClientError, reason
from ragstream.client.session import Session, expect


def list_documents(session: Session) -> list[dict[str, Any]]:
    """Every document the user can read (the API pages by 500)."""
    found: list[dict[str, Any]] = []
    while True:
        params = {"limit": 500, "offset": len(found)}
        page: list[dict[str, Any]] = expect(
            session.request("GET", "/api/documents", params=params), 200
        )
        found.extend(page)
        if len(page) < 500:
            return found


def delete(session: Session, document_id: str) -> None:
    response = session.request("DELETE", f"/api/documents/{document_id}")
    if response.status_code != 204:
        raise ClientError(f"{document_id}: {reason(response)}")
