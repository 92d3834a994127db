"""``rag feedback``: rate an answer, and (for a tenant's admins) list and
export the tenant's ratings."""

from __future__ import annotations

from typing import Any

import httpx

from ragstream.client import conversations
from ragstream.client.errors import ClientError, reason
from ragstream.client.session import Session, expect


def last_turn(session: Session, conversation_id: str | None) -> tuple[str, int]:
    """(conversation, turn) of the last answer: in the given conversation,
    else in the one the user was last active in."""
    conversation_id = conversation_id or conversations.last(session)
    found = conversations.get(session, conversation_id)
    if not found["turns"]:
        raise ClientError(f"conversation {conversation_id} has no answer to rate")
    return conversation_id, int(found["turns"][-1]["turn"])


def rate(
    session: Session,
    conversation_id: str,
    turn: int,
    rating: str,
    comment: str | None,
    wrong_source: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"rating": rating}
    if comment is not None:
        body["comment"] = comment
    if wrong_source is not None:
        body["wrong_source"] = wrong_source
    path = f"/api/conversations/{conversation_id}/turns/{turn}/feedback"
    rated: dict[str, Any] = expect(session.request("PUT", path, json=body), 200)
    return rated


def list_feedback(session: Session, rating: str | None, limit: int) -> list[dict[str, Any]]:
    """The tenant's ratings, newest first (the API pages by 500)."""
    found: list[dict[str, Any]] = []
    while len(found) < limit:
        params: dict[str, Any] = {"limit": min(500, limit - len(found))}
        if rating:
            params["rating"] = rating
        if found:
            params["before"] = found[-1]["seq"]
        page: list[dict[str, Any]] = expect(
            session.request("GET", "/api/admin/feedback", params=params), 200
        )
        found.extend(page)
        if len(page) < params["limit"]:
            break
    return found


def export(session: Session, fmt: str, rating: str | None) -> bytes:
    params = {"format": fmt, **({"rating": rating} if rating else {})}
    response: httpx.Response = session.request("GET", "/api/admin/feedback/export", params=params)
    if response.status_code != 200:
        raise ClientError(reason(response))
    return response.content
