"""Chroma, behind the few calls the services make.

Every chunk carries its owner's tenant and user id in its metadata, and every
search and delete filters on them inside Chroma's own query: results for one
tenant are never fetched and then filtered after the fact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

import chromadb
from chromadb.config import Settings as ChromaSettings

from shared.config import Settings
from shared.embeddings import Embedder


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


@dataclass(frozen=True)
class Hit:
    document_id: UUID
    filename: str
    chunk_index: int
    text: str
    score: float


def _owner(tenant_id: UUID, user_id: UUID, **more: str) -> dict[str, Any]:
    clauses = [{"tenant_id": str(tenant_id)}, {"user_id": str(user_id)}]
    clauses += [{key: value} for key, value in more.items()]
    return {"$and": clauses}


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


class VectorStore:
    """Async facade over the (blocking) Chroma client: calls run in threads."""

    def __init__(self, client: Any, embedder: Embedder) -> None:
        self._client = client
        # One collection per embedding space: vectors of different embedders
        # must never be compared with each other.
        self.collection_name = f"chunks-{embedder.name}-{embedder.dim}"
        self._collection: Any = None

    def _coll(self) -> Any:
        if self._collection is None:
            self._collection = self._client.get_or_create_collection(
                self.collection_name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
            )
        return self._collection

    def _upsert(self, chunks: list[Chunk]) -> None:
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
                }
                for c in chunks
            ],
        )

    def _search(self, tenant_id: UUID, user_id: UUID, embedding: list[float], k: int) -> list[Hit]:
        result = self._coll().query(
            query_embeddings=[embedding],
            n_results=k,
            where=_owner(tenant_id, user_id),
            include=["documents", "metadatas", "distances"],
        )
        rows = zip(
            result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
        )
        return [
            Hit(
                document_id=UUID(str(meta["document_id"])),
                filename=str(meta["filename"]),
                chunk_index=int(meta["chunk_index"]),
                text=text,
                score=round(1.0 - float(distance), 4),
            )
            for text, meta, distance in rows
        ]

    def _ids(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> set[str]:
        where = _owner(tenant_id, user_id, document_id=str(document_id))
        return set(self._coll().get(where=where, include=[])["ids"])

    def _delete(self, ids: list[str]) -> None:
        if ids:
            self._coll().delete(ids=ids)

    async def upsert(self, chunks: list[Chunk]) -> None:
        if chunks:
            await asyncio.to_thread(self._upsert, chunks)

    async def search(
        self, tenant_id: UUID, user_id: UUID, embedding: list[float], k: int
    ) -> list[Hit]:
        return await asyncio.to_thread(self._search, tenant_id, user_id, embedding, k)

    async def chunk_ids(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> set[str]:
        return await asyncio.to_thread(self._ids, tenant_id, user_id, document_id)

    async def delete_ids(self, ids: set[str]) -> None:
        await asyncio.to_thread(self._delete, sorted(ids))

    async def delete_document(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> int:
        ids = await self.chunk_ids(tenant_id, user_id, document_id)
        await self.delete_ids(ids)
        return len(ids)

    async def heartbeat(self) -> None:
        await asyncio.to_thread(self._client.heartbeat)
