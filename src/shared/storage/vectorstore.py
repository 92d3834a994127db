"""Chroma, behind the few calls the services make.

Every chunk carries its owner's tenant and user id, and its document's
visibility, in its metadata. A search filters on them inside Chroma's own
query (the tenant, and the caller's own chunks or the tenant's shared ones);
deletes filter on the owner. Results for one tenant are never fetched and then
filtered after the fact. A chunk without a visibility (indexed before sharing
existed) is private.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

import chromadb
from chromadb.config import Settings as ChromaSettings

from shared.adapters.embedding import Embedder
from shared.config import Settings
from shared.errors import RagError, Unavailable
from shared.text import in_context


@dataclass(frozen=True)
class Chunk:
    id: str
    tenant_id: UUID
    user_id: UUID
    document_id: UUID
    filename: str
    chunk_index: int
    text: str
    embedding: list[float]
    page: int | None = None
    section: str | None = None
    visibility: str = "private"


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk. ``score`` is whatever ranked it last (cosine
    similarity, BM25, fused rank, reranker), higher is better."""

    chunk_id: str
    document_id: UUID
    filename: str
    chunk_index: int
    text: str
    score: float
    page: int | None = None
    section: str | None = None

    @property
    def in_context(self) -> str:
        """What rerankers read: the text under its document's name and headings."""
        return in_context(self.filename, self.section, self.text)


def _owner(tenant_id: UUID, user_id: UUID, **more: object) -> dict[str, Any]:
    clauses: list[dict[str, object]] = [{"tenant_id": str(tenant_id)}, {"user_id": str(user_id)}]
    clauses += [{key: value} for key, value in more.items()]
    return {"$and": clauses}


def _readable(tenant_id: UUID, user_id: UUID, **more: object) -> dict[str, Any]:
    """What ``user_id`` may search: the tenant's chunks that are theirs or shared."""
    mine_or_shared: dict[str, object] = {
        "$or": [{"user_id": str(user_id)}, {"visibility": "tenant"}]
    }
    clauses: list[dict[str, object]] = [{"tenant_id": str(tenant_id)}, mine_or_shared]
    clauses += [{key: value} for key, value in more.items()]
    return {"$and": clauses}


_PREFIX = "chunks-"
_MAX_UPSERT = 1000
# Chroma refuses metadata updates of more ids than its batch size (5,461 on
# SQLite): a large document's chunks are updated a page at a time.
VISIBILITY_PAGE = 5000


def _optional(**values: object) -> dict[str, object]:
    # Chroma metadata values cannot be None: absent means unknown.
    return {key: value for key, value in values.items() if value is not None}


def _int_or_none(value: object) -> int | None:
    return int(str(value)) if value is not None else None


def _str_or_none(value: object) -> str | None:
    return str(value) if value is not None else None


def connect_chroma(settings: Settings) -> Any:
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


def _collection_name(model: str, dim: int) -> str:
    # Chroma allows [A-Za-z0-9._-] in names, starting and ending alphanumeric.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-._")
    return f"{_PREFIX}{safe}-{dim}"[:500]


class VectorStore:
    """Async facade over the (blocking) Chroma client: calls run in threads."""

    def __init__(self, client: Any, embedder: Embedder | None) -> None:
        """Without an embedder (the gateway) the store can only delete, and
        deletes from every embedding space's collection."""
        self._client = client
        # One collection per embedding space: vectors of different models are
        # never stored or compared together. A new model gets a new, empty
        # collection, filled by re-indexing.
        self.model = f"{embedder.name}/{embedder.dim}" if embedder else None
        self.collection_name = _collection_name(embedder.name, embedder.dim) if embedder else None
        self._collection: Any = None

    def _coll(self) -> Any:
        if self.collection_name is None:
            raise RagError("this process has no embedding model: it cannot search or index")
        if self._collection is None:
            collection = self._client.get_or_create_collection(
                self.collection_name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": self.model},
            )
            recorded = (collection.metadata or {}).get("embedding_model")
            if recorded not in (None, self.model):
                raise Unavailable(
                    f"Chroma collection {self.collection_name!r} holds vectors of {recorded!r},"
                    f" not {self.model!r}: refusing to mix two embedding models"
                )
            self._collection = collection
        return self._collection

    def _upsert(self, chunks: list[Chunk]) -> None:
        # Chroma refuses batches over its maximum size.
        batch = max(1, min(self._client.get_max_batch_size(), _MAX_UPSERT))
        for start in range(0, len(chunks), batch):
            self._upsert_batch(chunks[start : start + batch])

    def _upsert_batch(self, chunks: list[Chunk]) -> None:
        self._coll().upsert(
            ids=[c.id for c in chunks],
            embeddings=[c.embedding for c in chunks],
            documents=[c.text for c in chunks],
            metadatas=[
                {
                    "tenant_id": str(c.tenant_id),
                    "user_id": str(c.user_id),
                    "document_id": str(c.document_id),
                    "filename": c.filename,
                    "chunk_index": c.chunk_index,
                    "visibility": c.visibility,
                    **_optional(page=c.page, section=c.section),
                }
                for c in chunks
            ],
        )

    def _search(
        self,
        tenant_id: UUID,
        user_id: UUID,
        embedding: list[float],
        k: int,
        document_ids: Sequence[UUID] | None,
    ) -> list[Hit]:
        more = {}
        if document_ids is not None:
            more["document_id"] = {"$in": [str(d) for d in document_ids]}
        result = self._coll().query(
            query_embeddings=[embedding],
            n_results=k,
            where=_readable(tenant_id, user_id, **more),
            include=["documents", "metadatas", "distances"],
        )
        rows = zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        )
        return [
            Hit(
                chunk_id=chunk_id,
                document_id=UUID(str(meta["document_id"])),
                filename=str(meta["filename"]),
                chunk_index=int(meta["chunk_index"]),
                text=text,
                score=round(1.0 - float(distance), 4),
                page=_int_or_none(meta.get("page")),
                section=_str_or_none(meta.get("section")),
            )
            for chunk_id, text, meta, distance in rows
        ]

    def _ids(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> set[str]:
        where = _owner(tenant_id, user_id, document_id=str(document_id))
        return set(self._coll().get(where=where, include=[])["ids"])

    def _delete(self, ids: list[str]) -> None:
        if ids:
            self._coll().delete(ids=ids)

    def _chunk_collections(self) -> list[Any]:
        return [c for c in self._client.list_collections() if c.name.startswith(_PREFIX)]

    def _set_visibility(
        self, tenant_id: UUID, user_id: UUID, document_id: UUID, visibility: str
    ) -> int:
        # Only the chunks that differ: a check that finds all in order (a
        # re-index of an unchanged document) writes nothing.
        where = _owner(
            tenant_id, user_id, document_id=str(document_id), visibility={"$ne": visibility}
        )
        page = max(1, min(self._client.get_max_batch_size(), VISIBILITY_PAGE))
        updated = 0
        for collection in self._chunk_collections():
            # All ids first, then pages of updates: paging the read by offset
            # would skip chunks if an ingest deleted some meanwhile.
            ids = collection.get(where=where, include=[])["ids"]
            for start in range(0, len(ids), page):
                batch = ids[start : start + page]
                # Metadata updates merge: only the visibility changes. Ids
                # deleted meanwhile are ignored.
                collection.update(ids=batch, metadatas=[{"visibility": visibility}] * len(batch))
            updated += len(ids)
        return updated

    def _delete_everywhere(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> int:
        where = _owner(tenant_id, user_id, document_id=str(document_id))
        deleted = 0
        for collection in self._chunk_collections():
            ids = collection.get(where=where, include=[])["ids"]
            if ids:
                collection.delete(ids=ids)
            deleted += len(ids)
        return deleted

    async def upsert(self, chunks: list[Chunk]) -> None:
        if chunks:
            await asyncio.to_thread(self._upsert, chunks)

    async def search(
        self,
        tenant_id: UUID,
        user_id: UUID,
        embedding: list[float],
        k: int,
        document_ids: Sequence[UUID] | None = None,
    ) -> list[Hit]:
        return await asyncio.to_thread(self._search, tenant_id, user_id, embedding, k, document_ids)

    async def chunk_ids(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> set[str]:
        return await asyncio.to_thread(self._ids, tenant_id, user_id, document_id)

    async def delete_ids(self, ids: set[str]) -> None:
        await asyncio.to_thread(self._delete, sorted(ids))

    async def delete_document(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> int:
        if self.collection_name is None:
            return await asyncio.to_thread(self._delete_everywhere, tenant_id, user_id, document_id)
        ids = await self.chunk_ids(tenant_id, user_id, document_id)
        await self.delete_ids(ids)
        return len(ids)

    async def set_visibility(
        self, tenant_id: UUID, user_id: UUID, document_id: UUID, visibility: str
    ) -> int:
        """Set the visibility of the owner's document's chunks, in every
        embedding space's collection; how many chunks it found."""
        return await asyncio.to_thread(
            self._set_visibility, tenant_id, user_id, document_id, visibility
        )

    async def heartbeat(self) -> None:
        await asyncio.to_thread(self._client.heartbeat)
