"""``rag conversations`` and ``rag chat --continue``: the user's
conversations over /api/conversations."""

from __future__ import annotations

from typing import Any

from ragstream.client.errors import ClientError, reason
from ragstream.client.session import Session, expect

PAGE = 100


def list_conversations(session: Session, limit: int) -> list[dict[str, Any]]:
    """The user's ``limit`` most recently active conversations."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(found) < limit:
        params: dict[str, Any] = {"limit": min(PAGE, limit - len(found))}
        if cursor:
            params["cursor"] = cursor
        page = expect(session.request("GET", "/api/conversations", params=params), 200)
        found.extend(page["conversations"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    return found


def last(session: Session) -> str:
    """The id of the user's most recently active conversation."""
    found = list_conversations(session, 1)
    if not found:
        raise ClientError("no conversation to continue: ask without --continue first")
    return str(found[0]["id"])


def get(session: Session, conversation_id: str) -> dict[str, Any]:
    body: dict[str, Any] = expect(
        session.request("GET", f"/api/conversations/{conversation_id}"), 200
    )
    return body


def rename(session: Session, conversation_id: str, title: str) -> dict[str, Any]:
    response = session.request(
        "PATCH", f"/api/conversations/{conversation_id}", json={"title": title}
    )
    body: dict[str, Any] = expect(response, 200)
    return body


def delete(session: Session, conversation_id: str) -> None:
    response = session.request("DELETE", f"/api/conversations/{conversation_id}")
    if response.status_code != 204:
        raise ClientError(f"{conversation_id}: {reason(response)}")
