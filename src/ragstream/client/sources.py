"""``rag sync``: folder-sync sources over the API (tenant admins)."""

from __future__ import annotations

from typing import Any

from ragstream.client.errors import ClientError
from ragstream.client.session import Session, expect


def add(session: Session, body: dict[str, Any]) -> dict[str, Any]:
    added: dict[str, Any] = expect(session.request("POST", "/api/sources", json=body), 201)
    return added


def list_all(session: Session) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = expect(session.request("GET", "/api/sources"), 200)
    return found


def by_name(session: Session, name: str) -> dict[str, Any]:
    """The source named ``name``, in detail (runs, failed files)."""
    for source in list_all(session):
        if source["name"] == name:
            detail: dict[str, Any] = expect(
                session.request("GET", f"/api/sources/{source['id']}"), 200
            )
            return detail
    raise ClientError(f"no source named {name!r} (rag sync status lists them)")


def run(session: Session, source_id: str) -> dict[str, Any]:
    started: dict[str, Any] = expect(session.request("POST", f"/api/sources/{source_id}/run"), 202)
    return started


def remove(session: Session, source_id: str, *, keep_documents: bool) -> dict[str, Any]:
    params = {"keep_documents": "true"} if keep_documents else {}
    removed: dict[str, Any] = expect(
        session.request("DELETE", f"/api/sources/{source_id}", params=params), 202
    )
    return removed
