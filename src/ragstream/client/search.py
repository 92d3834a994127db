"""``rag search``: one query over POST /api/search, the ranked passages back."""

from __future__ import annotations

from typing import Any

from ragstream.client.errors import ClientError
from ragstream.client.session import Session, expect


def filters(tags: list[str], all_tags: bool, meta: list[str]) -> dict[str, Any]:
    """The API's ``filters`` from the command's options (``key=value`` each)."""
    found: dict[str, Any] = {}
    if tags:
        found["tags_all" if all_tags else "tags_any"] = tags
    pairs = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep:
            raise ClientError(f"--meta {item!r}: expected key=value")
        pairs[key.strip()] = value.strip()
    if pairs:
        found["meta"] = pairs
    return found


def search(
    session: Session,
    query: str,
    *,
    top_k: int | None = None,
    retrieval: str | None = None,
    reranking: str | None = None,
    document_ids: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The passages, best first (each with ``scores`` per stage)."""
    body: dict[str, Any] = {"query": query, **(extra or {})}
    optional = {
        "top_k": top_k,
        "retrieval": retrieval,
        "reranking": reranking,
        "document_ids": document_ids,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    found = expect(session.request("POST", "/api/search", json=body), 200)
    passages: list[dict[str, Any]] = found["passages"]
    return passages
