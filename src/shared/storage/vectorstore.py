"""Chroma, behind the few calls the services make.

Each tenant's chunks are in collections of their own, one per embedding
model: a search opens only the asking tenant's collection, so no other
tenant's chunk can be among its candidates, and it needs no tenant filter
(a metadata filter costs Chroma a pass over every matching row: 250-370 ms
per query at 100k chunks, against 3 ms for the same HNSW search unfiltered;
docs/performance.md).

Within a tenant, a user reads their own chunks, those of documents the
tenant shares, and those of documents shared with a group they are in;
every chunk carries its owner's user id, its document's visibility and one
key per group it is shared with (``group:<id>``: Chroma metadata holds no
lists) in its metadata. The caller's groups are read from PostgreSQL by
the caller of a search, at the time of the search. A search asks for a few times the candidates
without a filter and keeps the readable ones; only when too few of those
remain (most of the nearest chunks are colleagues' private ones) does it
ask again with the reader filter inside Chroma's query. A colleague's
private chunk never leaves this module. A chunk without a visibility
(indexed before sharing existed) is private.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse
from uuid import UUID

import chromadb
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from shared.adapters.embedding import Embedder
from shared.config import Settings
from shared.contracts.labels import Filters
from shared.errors import RagError, Unavailable
from shared.storage.vector_writes import VectorWriteLock
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
    # Copies of the document row's, for filters (shared.contracts.labels).
    content_type: str | None = None
    uploaded_at: datetime | None = None
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    groups: tuple[UUID, ...] = ()


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
    # (stage, score) of every stage that ranked it, in order: what
    # POST /api/search shows ("dense", "bm25", "fused", "reranker",
    # "reranked_fused"). A tuple, so a Hit stays hashable.
    stages: tuple[tuple[str, float], ...] = ()

    def scored(self, stage: str, score: float) -> Hit:
        """This hit ranked by ``stage`` with ``score`` (replacing an earlier
        score of the same stage)."""
        kept = tuple((name, value) for name, value in self.stages if name != stage)
        return replace(self, score=score, stages=(*kept, (stage, score)))

    def stage_scores(self) -> dict[str, float]:
        return dict(self.stages)

    @property
    def in_context(self) -> str:
        """What rerankers read: the text under its document's name and headings."""
        return in_context(self.filename, self.section, self.text)


def _owner(user_id: UUID, **more: object) -> dict[str, Any]:
    clauses: list[dict[str, object]] = [{"user_id": str(user_id)}]
    clauses += [{key: value} for key, value in more.items()]
    return {"$and": clauses}


def _in_groups(groups: Collection[UUID]) -> list[dict[str, Any]]:
    """Chunks shared with any of ``groups`` (none: no clause)."""
    if not groups:
        return []
    keys = _either([{GROUP_KEY + str(g): True} for g in sorted(groups)])
    return [{"$and": [{"visibility": "groups"}, keys]}]


def _readable(
    user_id: UUID, groups: Collection[UUID], *clauses: dict[str, Any], **more: object
) -> dict[str, Any]:
    """What ``user_id``, a member of ``groups``, may search in their tenant's
    collection: their own chunks, the tenant's shared ones, their groups'
    (and ``clauses`` and ``more``, which only narrow it)."""
    mine_or_shared: dict[str, object] = {
        "$or": [{"user_id": str(user_id)}, {"visibility": "tenant"}, *_in_groups(groups)]
    }
    narrower = [*clauses, *({key: value} for key, value in more.items())]
    if not narrower:
        return mine_or_shared
    return {"$and": [mine_or_shared, *narrower]}


# Chunk metadata keys of a document's labels: one key per tag and per
# metadata entry, so a filter is plain equality in Chroma's ``where``.
TAG_KEY = "tag:"
META_KEY = "meta:"
# One key per group a document is shared with (``True``), likewise.
GROUP_KEY = "group:"
_COPIED = (TAG_KEY, META_KEY, GROUP_KEY)


def _either(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    # Chroma's $or wants two clauses at least.
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def filter_clauses(filters: Filters | None) -> list[dict[str, Any]]:
    """A filter as clauses of Chroma's ``where`` (to be ANDed with the
    reader's): each narrows, none can widen."""
    if filters is None:
        return []
    clauses: list[dict[str, Any]] = []
    if filters.tags_any:
        clauses.append(_either([{TAG_KEY + tag: True} for tag in sorted(set(filters.tags_any))]))
    clauses += [{TAG_KEY + tag: True} for tag in sorted(set(filters.tags_all or ()))]
    clauses += [{META_KEY + key: value} for key, value in sorted((filters.meta or {}).items())]
    if filters.filename is not None:
        clauses.append({"filename": filters.filename})
    if filters.content_type is not None:
        clauses.append({"content_type": filters.content_type})
    if filters.uploaded_after is not None:
        clauses.append({"uploaded_at": {"$gte": _epoch(filters.uploaded_after)}})
    if filters.uploaded_before is not None:
        clauses.append({"uploaded_at": {"$lt": _epoch(filters.uploaded_before)}})
    return clauses


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def label_metadata(tags: Sequence[str], meta: Mapping[str, str]) -> dict[str, Any]:
    return {**{TAG_KEY + t: True for t in tags}, **{META_KEY + k: v for k, v in meta.items()}}


def document_fields(
    content_type: str,
    uploaded_at: datetime,
    tags: Sequence[str],
    meta: Mapping[str, str],
    groups: Collection[UUID] = (),
) -> dict[str, Any]:
    """What every chunk's metadata copies from its document row (and the
    groups it is shared with), for filters and readers."""
    return {
        "content_type": content_type,
        "uploaded_at": _epoch(uploaded_at),
        **label_metadata(tags, meta),
        **{GROUP_KEY + str(g): True for g in groups},
    }


def _may_read(user_id: UUID, groups: Collection[UUID], meta: dict[str, Any]) -> bool:
    """``_readable`` on one chunk's metadata."""
    if meta.get("visibility") == "tenant" or meta.get("user_id") == str(user_id):
        return True
    return meta.get("visibility") == "groups" and any(
        meta.get(GROUP_KEY + str(g)) is True for g in groups
    )


_T = TypeVar("_T")
CHUNK_PREFIX = "chunks-"
_MAX_UPSERT = 1000
# Chroma refuses metadata updates of more ids than its batch size (5,461 on
# SQLite): a large document's chunks are updated a page at a time.
VISIBILITY_PAGE = 5000
# An unfiltered search asks for this many times the candidates wanted, so
# that colleagues' private chunks among the nearest leave enough readable ones.
OVERFETCH = 4


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


def space_name(model: str, dim: int) -> str:
    """The prefix of one embedding model's collections."""
    # Chroma allows [A-Za-z0-9._-] in names, starting and ending alphanumeric.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-._")
    return f"{CHUNK_PREFIX}{safe}-{dim}"[:400]


def collection_name(space: str, tenant_id: UUID) -> str:
    """One tenant's collection in an embedding model's space."""
    return f"{space}-{tenant_id.hex}"


def tenant_of(name: str) -> UUID | None:
    """The tenant of a per-tenant chunk collection's name; None for any
    other collection (a shared one from before tenants had their own)."""
    if not name.startswith(CHUNK_PREFIX):
        return None
    _, _, tail = name.rpartition("-")
    try:
        return UUID(hex=tail) if len(tail) == 32 else None
    except ValueError:
        return None


def open_collection(client: Any, name: str, model: str | None, tenant_id: UUID) -> Any:
    """A tenant's chunk collection, made if missing, its model recorded."""
    return client.get_or_create_collection(
        name,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"embedding_model": model, "tenant_id": str(tenant_id)},
    )


class VectorStore:
    """Async facade over the (blocking) Chroma client: calls run in threads."""

    def __init__(
        self, client: Any, embedder: Embedder | None, writes: VectorWriteLock | None = None
    ) -> None:
        """Without an embedder (the gateway) the store can only delete and
        change visibility, which it does in every embedding model's collections.
        ``writes``: the lock every process writing into these collections
        holds (``shared.storage.vector_writes``); only a test writing alone
        may leave it out."""
        self._client = client
        self._writes = writes
        # Collections per embedding space: vectors of different models are
        # never stored or compared together. A new model gets new, empty
        # collections, filled by re-indexing.
        self.model = f"{embedder.name}/{embedder.dim}" if embedder else None
        self.space = space_name(embedder.name, embedder.dim) if embedder else None
        self._collections: dict[UUID, Any] = {}

    def collection_name(self, tenant_id: UUID) -> str:
        if self.space is None:
            raise RagError("this process has no embedding model: it cannot search or index")
        return collection_name(self.space, tenant_id)

    def _coll(self, tenant_id: UUID, *, create: bool = True) -> Any:
        """The tenant's collection in this model's space; None when it has
        none yet and ``create`` is false."""
        collection = self._collections.get(tenant_id)
        if collection is not None:
            return collection
        name = self.collection_name(tenant_id)
        if create:
            collection = open_collection(self._client, name, self.model, tenant_id)
        else:
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        recorded = (collection.metadata or {}).get("embedding_model")
        if recorded not in (None, self.model):
            raise Unavailable(
                f"Chroma collection {name!r} holds vectors of {recorded!r},"
                f" not {self.model!r}: refusing to mix two embedding models"
            )
        self._collections[tenant_id] = collection
        return collection

    def _on(self, tenant_id: UUID, action: Callable[[Any], _T], *, create: bool) -> _T | None:
        """``action`` on the tenant's collection (None when it has none and
        ``create`` is false). A collection deleted since it was opened (a
        restore, a model's old collections removed) is opened again once."""
        for attempt in range(2):
            collection = self._coll(tenant_id, create=create)
            if collection is None:
                return None
            try:
                return action(collection)
            except NotFoundError:
                self._collections.pop(tenant_id, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _upsert(self, tenant_id: UUID, owned: list[Chunk]) -> None:
        # Chroma refuses batches over its maximum size.
        batch = max(1, min(self._client.get_max_batch_size(), _MAX_UPSERT))
        for start in range(0, len(owned), batch):
            part = owned[start : start + batch]
            self._on(tenant_id, partial(_upsert_batch, chunks=part), create=True)

    def _writing(self, tenant_id: UUID) -> AbstractAsyncContextManager[None]:
        return self._writes.hold(tenant_id) if self._writes else nullcontext()

    def _search(
        self,
        tenant_id: UUID,
        user_id: UUID,
        embedding: list[float],
        k: int,
        document_ids: Sequence[UUID] | None,
        filters: Filters | None = None,
        groups: Collection[UUID] = (),
    ) -> list[Hit]:
        narrower = filter_clauses(filters)
        if document_ids is not None:
            narrower.append({"document_id": {"$in": [str(d) for d in document_ids]}})

        def search(collection: Any) -> list[Hit]:
            if narrower:
                # Filtered inside Chroma's query, with the reader's filter.
                where = _readable(user_id, groups, *narrower)
                return _hits(_query(collection, embedding, k, where))
            wanted = k * OVERFETCH
            rows = _query(collection, embedding, wanted, None)
            readable = [row for row in rows if _may_read(user_id, groups, row[2])]
            if len(readable) < k and len(rows) == wanted:
                # Colleagues' private chunks crowd the nearest: let Chroma filter.
                readable = _query(collection, embedding, k, _readable(user_id, groups))
            return _hits(readable[:k])

        return self._on(tenant_id, search, create=False) or []

    def _ids(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> set[str]:
        where = _owner(user_id, document_id=str(document_id))
        ids = self._on(tenant_id, lambda c: c.get(where=where, include=[])["ids"], create=False)
        return set(ids or [])

    def _vectors(self, tenant_id: UUID, ids: list[str]) -> dict[str, list[float]]:
        def get(collection: Any) -> dict[str, list[float]]:
            found = collection.get(ids=ids, include=["embeddings"])
            return {
                chunk_id: [float(x) for x in vector]
                for chunk_id, vector in zip(found["ids"], found["embeddings"], strict=True)
            }

        return self._on(tenant_id, get, create=False) or {}

    def _delete(self, tenant_id: UUID, ids: list[str]) -> None:
        if ids:
            self._on(tenant_id, lambda c: c.delete(ids=ids), create=False)

    def _tenant_collections(self, tenant_id: UUID) -> list[Any]:
        """The tenant's collections in every embedding space."""
        return [c for c in self._client.list_collections() if tenant_of(c.name) == tenant_id]

    def _set_visibility(
        self, tenant_id: UUID, user_id: UUID, document_id: UUID, visibility: str
    ) -> int:
        # Only the chunks that differ: a check that finds all in order (a
        # re-index of an unchanged document) writes nothing.
        where = _owner(user_id, document_id=str(document_id), visibility={"$ne": visibility})
        page = max(1, min(self._client.get_max_batch_size(), VISIBILITY_PAGE))
        updated = 0
        for collection in self._tenant_collections(tenant_id):
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

    def _set_fields(
        self, tenant_id: UUID, user_id: UUID, document_id: UUID, wanted: Mapping[str, Any]
    ) -> int:
        where = _owner(user_id, document_id=str(document_id))
        page = max(1, min(self._client.get_max_batch_size(), VISIBILITY_PAGE))
        updated = 0
        for collection in self._tenant_collections(tenant_id):
            found = collection.get(where=where, include=["metadatas"])
            ids, metas = found["ids"], found["metadatas"]
            changes = [
                (chunk_id, change)
                for chunk_id, current in zip(ids, metas, strict=True)
                if (change := _label_change(current or {}, wanted))
            ]
            for start in range(0, len(changes), page):
                batch = changes[start : start + page]
                # Metadata updates merge; a key set to None is removed.
                collection.update(ids=[c for c, _ in batch], metadatas=[m for _, m in batch])
            updated += len(ids)
        return updated

    def _delete_everywhere(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> int:
        where = _owner(user_id, document_id=str(document_id))
        deleted = 0
        for collection in self._tenant_collections(tenant_id):
            ids = collection.get(where=where, include=[])["ids"]
            if ids:
                collection.delete(ids=ids)
            deleted += len(ids)
        return deleted

    async def upsert(self, chunks: list[Chunk]) -> None:
        by_tenant: dict[UUID, list[Chunk]] = {}
        for chunk in chunks:
            by_tenant.setdefault(chunk.tenant_id, []).append(chunk)
        for tenant_id, owned in by_tenant.items():
            async with self._writing(tenant_id):
                await asyncio.to_thread(self._upsert, tenant_id, owned)

    async def search(
        self,
        tenant_id: UUID,
        user_id: UUID,
        embedding: list[float],
        k: int,
        document_ids: Sequence[UUID] | None = None,
        filters: Filters | None = None,
        groups: Collection[UUID] = (),
    ) -> list[Hit]:
        """The ``k`` nearest chunks ``user_id`` may read; ``groups``: the ids
        of the groups the user is in, read from PostgreSQL for this search."""
        return await asyncio.to_thread(
            self._search, tenant_id, user_id, embedding, k, document_ids, filters, groups
        )

    async def chunk_ids(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> set[str]:
        return await asyncio.to_thread(self._ids, tenant_id, user_id, document_id)

    async def vectors(self, tenant_id: UUID, ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of the tenant's chunks ``ids``, by id (a chunk
        deleted meanwhile is absent)."""
        if not ids:
            return {}
        return await asyncio.to_thread(self._vectors, tenant_id, list(ids))

    async def delete_ids(self, tenant_id: UUID, ids: set[str]) -> None:
        if ids:
            async with self._writing(tenant_id):
                await asyncio.to_thread(self._delete, tenant_id, sorted(ids))

    async def delete_document(self, tenant_id: UUID, user_id: UUID, document_id: UUID) -> int:
        if self.space is None:
            async with self._writing(tenant_id):
                return await asyncio.to_thread(
                    self._delete_everywhere, tenant_id, user_id, document_id
                )
        ids = await self.chunk_ids(tenant_id, user_id, document_id)
        await self.delete_ids(tenant_id, ids)
        return len(ids)

    async def set_visibility(
        self, tenant_id: UUID, user_id: UUID, document_id: UUID, visibility: str
    ) -> int:
        """Set the visibility of the owner's document's chunks, in every
        embedding space's collection of the tenant; how many chunks it found."""
        async with self._writing(tenant_id):
            return await asyncio.to_thread(
                self._set_visibility, tenant_id, user_id, document_id, visibility
            )

    async def set_document_fields(
        self, tenant_id: UUID, user_id: UUID, document_id: UUID, wanted: Mapping[str, Any]
    ) -> int:
        """Make the owner's document's chunk metadata carry ``wanted``
        (``document_fields``: its labels, content type, upload time), in every
        embedding space's collection of the tenant, tags and metadata it no
        longer has removed; only chunks that differ are written. How many
        chunks it found."""
        async with self._writing(tenant_id):
            return await asyncio.to_thread(
                self._set_fields, tenant_id, user_id, document_id, wanted
            )

    async def heartbeat(self) -> None:
        await asyncio.to_thread(self._client.heartbeat)


_Row = tuple[str, str, dict[str, Any], float]


def _label_change(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata update taking a chunk's labels from ``current`` to
    ``wanted`` (None removes a key); empty when they agree."""
    change: dict[str, Any] = {
        key: None for key in current if key.startswith(_COPIED) and key not in wanted
    }
    change.update({key: value for key, value in wanted.items() if current.get(key) != value})
    return change


def _upsert_batch(collection: Any, chunks: list[Chunk]) -> None:
    collection.upsert(
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
                **(
                    document_fields(c.content_type, c.uploaded_at, c.tags, dict(c.meta), c.groups)
                    if c.content_type is not None and c.uploaded_at is not None
                    else {}
                ),
            }
            for c in chunks
        ],
    )


def _query(
    collection: Any, embedding: list[float], n: int, where: dict[str, Any] | None
) -> list[_Row]:
    """(id, text, metadata, distance) of the ``n`` nearest, nearest first."""
    result = collection.query(
        query_embeddings=[embedding],
        n_results=n,
        where=where,
        include=["documents", "metadatas", "distances"],
    )
    return list(
        zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        )
    )


def _hits(rows: list[_Row]) -> list[Hit]:
    return [
        Hit(
            chunk_id=chunk_id,
            document_id=UUID(str(meta["document_id"])),
            filename=str(meta["filename"]),
            chunk_index=int(meta["chunk_index"]),
            text=text,
            score=0.0,
            page=_int_or_none(meta.get("page")),
            section=_str_or_none(meta.get("section")),
        ).scored("dense", round(1.0 - float(distance), 4))
        for chunk_id, text, meta, distance in rows
    ]
