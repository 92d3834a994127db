"""Moving chunks stored before each tenant had its own collections.

Until 2026-11 one collection per embedding model held every tenant's chunks,
and a search filtered on the tenant inside Chroma, which cost a pass over the
tenant's rows on every query (docs/performance.md). ``rag migrate`` moves
such a collection's chunks, vectors and all (nothing is embedded again),
into per-tenant collections of the same model, then deletes it. It is safe
to stop and run again: a page is deleted from the old collection only after
it is written to the new ones, and writing is an upsert.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import structlog

from shared.errors import RagError
from shared.storage.vectorstore import CHUNK_PREFIX, collection_name, open_collection, tenant_of

log = structlog.get_logger(__name__)

PAGE = 1000


def shared_collections(client: Any) -> list[Any]:
    """The chunk collections that hold more than one tenant's chunks."""
    return [
        c
        for c in client.list_collections()
        if c.name.startswith(CHUNK_PREFIX) and tenant_of(c.name) is None
    ]


def split_by_tenant(client: Any) -> int:
    """Move every shared chunk collection's chunks into per-tenant ones;
    how many chunks moved."""
    moved = 0
    for shared in shared_collections(client):
        count = _split(client, shared)
        client.delete_collection(shared.name)
        log.info("Chunk collection split by tenant", collection=shared.name, chunks=count)
        moved += count
    return moved


def _split(client: Any, shared: Any) -> int:
    model = (shared.metadata or {}).get("embedding_model")
    moved = 0
    while True:
        page = shared.get(limit=PAGE, include=["embeddings", "documents", "metadatas"])
        ids: list[str] = page["ids"]
        if not ids:
            return moved
        rows: dict[UUID, list[int]] = {}
        for i, meta in enumerate(page["metadatas"]):
            if not meta or "tenant_id" not in meta:
                raise RagError(f"chunk {ids[i]} in {shared.name!r} has no tenant: not moved")
            rows.setdefault(UUID(str(meta["tenant_id"])), []).append(i)
        for tenant_id, positions in rows.items():
            name = collection_name(shared.name, tenant_id)
            target = open_collection(client, name, model, tenant_id)
            target.upsert(
                ids=[ids[i] for i in positions],
                embeddings=[page["embeddings"][i] for i in positions],
                documents=[page["documents"][i] for i in positions],
                metadatas=[page["metadatas"][i] for i in positions],
            )
        shared.delete(ids=ids)
        moved += len(ids)
