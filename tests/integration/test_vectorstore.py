"""Each tenant's chunks in collections of its own; within the tenant a user
reads their own chunks and shared ones, however many colleagues' private
chunks are nearer; visibility changes reach every chunk of a document; chunks
of the older shared layout move to per-tenant collections."""

from __future__ import annotations

import random
import uuid

import pytest

from shared.adapters.embedding import HashingEmbedder
from shared.config import Settings
from shared.storage.vector_layout import shared_collections, split_by_tenant
from shared.storage.vectorstore import (
    OVERFETCH,
    VISIBILITY_PAGE,
    Chunk,
    VectorStore,
    connect_chroma,
    space_name,
)


def _chunk(tenant: uuid.UUID, doc: uuid.UUID, index: int, text: str, vector: list[float]) -> Chunk:
    return Chunk(
        id=f"{doc}:{index}:x",
        tenant_id=tenant,
        user_id=tenant,
        document_id=doc,
        filename="f.txt",
        chunk_index=index,
        text=text,
        embedding=vector,
    )


async def test_search_and_delete_only_touch_the_owners_chunks(stack_env: dict[str, str]) -> None:
    embedder = HashingEmbedder(32)
    store = VectorStore(connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"])), embedder)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    doc_a, doc_b = uuid.uuid4(), uuid.uuid4()
    [vector] = embedder.embed(["quarterly revenue figures"])
    # Identical vectors: only the filter can tell them apart.
    await store.upsert(
        [
            _chunk(alice, doc_a, 0, "alice's revenue", vector),
            _chunk(bob, doc_b, 0, "bob's revenue", vector),
        ]
    )

    hits = await store.search(alice, alice, vector, 10)
    assert [h.text for h in hits] == ["alice's revenue"]
    assert hits[0].score > 0.99

    assert await store.delete_document(bob, bob, doc_a) == 0
    assert [h.document_id for h in await store.search(alice, alice, vector, 10)] == [doc_a]
    assert await store.delete_document(alice, alice, doc_a) == 1
    assert await store.search(alice, alice, vector, 10) == []
    assert [h.text for h in await store.search(bob, bob, vector, 10)] == ["bob's revenue"]


async def test_stored_vectors_are_read_back_by_id_within_the_tenant(
    stack_env: dict[str, str],
) -> None:
    embedder = HashingEmbedder(32)
    store = VectorStore(connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"])), embedder)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    doc_a, doc_b = uuid.uuid4(), uuid.uuid4()
    first, second = embedder.embed(["parental leave policy", "expense report deadline"])
    mine = [_chunk(alice, doc_a, 0, "leave", first), _chunk(alice, doc_a, 1, "expenses", second)]
    theirs = _chunk(bob, doc_b, 0, "bob's", first)
    await store.upsert([*mine, theirs])

    found = await store.vectors(alice, [mine[1].id, "gone:0:x", mine[0].id])
    assert set(found) == {mine[0].id, mine[1].id}
    assert found[mine[0].id] == pytest.approx(first, abs=1e-6)
    assert found[mine[1].id] == pytest.approx(second, abs=1e-6)
    # Another tenant's id is not in this tenant's collection.
    assert await store.vectors(alice, [theirs.id]) == {}
    assert await store.vectors(uuid.uuid4(), [mine[0].id]) == {}
    assert await store.vectors(alice, []) == {}


def _owned(
    tenant: uuid.UUID,
    user: uuid.UUID,
    doc: uuid.UUID,
    text: str,
    vector: list[float],
    visibility: str = "private",
    index: int = 0,
) -> Chunk:
    return Chunk(
        id=f"{doc}:{index}:x",
        tenant_id=tenant,
        user_id=user,
        document_id=doc,
        filename="f.txt",
        chunk_index=index,
        text=text,
        embedding=vector,
        visibility=visibility,
    )


async def test_search_covers_own_and_tenant_shared_chunks_only(stack_env: dict[str, str]) -> None:
    """Tenant A: a1 has a private and a shared document, a2 one of their own;
    tenant B: b1. A filter on the tenant alone shows a2 the private chunk;
    on the user alone hides the shared one; on visibility without the tenant
    shows the shared one to b1. A chunk stored before visibility existed (no
    such metadata) stays private."""
    embedder = HashingEmbedder(32)
    client = connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"]))
    store = VectorStore(client, embedder)
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    a1, a2, b1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    private, shared, own, theirs, legacy = (uuid.uuid4() for _ in range(5))
    [vector] = embedder.embed(["the merger budget"])
    await store.upsert(
        [
            _owned(tenant_a, a1, private, "a1 private", vector),
            _owned(tenant_a, a1, shared, "a1 shared", vector, "tenant"),
            _owned(tenant_a, a2, own, "a2 own", vector),
            _owned(tenant_b, b1, theirs, "b1 own", vector, "tenant"),
        ]
    )
    client.get_collection(store.collection_name(tenant_a)).upsert(
        ids=[f"{legacy}:0:x"],
        embeddings=[vector],
        documents=["a1 legacy"],
        metadatas=[
            {
                "tenant_id": str(tenant_a),
                "user_id": str(a1),
                "document_id": str(legacy),
                "filename": "old.txt",
                "chunk_index": 0,
            }
        ],
    )

    async def found(tenant: uuid.UUID, user: uuid.UUID) -> set[uuid.UUID]:
        return {h.document_id for h in await store.search(tenant, user, vector, 10)}

    assert await found(tenant_a, a1) == {private, shared, legacy}
    assert await found(tenant_a, a2) == {shared, own}
    assert await found(tenant_b, b1) == {theirs}
    assert await found(tenant_b, a2) == {theirs}  # b1 shares with tenant B only
    assert await found(tenant_a, b1) == {shared}  # ...and a1 with tenant A only

    # Only the owner's chunks change; the legacy one can be shared too.
    assert await store.set_visibility(tenant_a, a2, legacy, "tenant") == 0
    assert await store.set_visibility(tenant_a, a1, legacy, "tenant") == 1
    assert await store.set_visibility(tenant_a, a1, shared, "private") == 1
    assert await found(tenant_a, a2) == {legacy, own}
    # Deleting stays the owner's: a2 can read the legacy chunk, not delete it.
    assert await store.delete_document(tenant_a, a2, legacy) == 0
    assert await found(tenant_a, a2) == {legacy, own}


async def test_visibility_changes_every_collection_in_pages(stack_env: dict[str, str]) -> None:
    """More chunks than Chroma updates at once (5,461), in two embedding
    spaces' collections, changed by a store without an embedder (the
    gateway's)."""
    client = connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"]))
    small, other = HashingEmbedder(8), HashingEmbedder(16)
    tenant, owner, reader = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    doc = uuid.uuid4()
    [vector] = small.embed(["a long manual"])
    [vector16] = other.embed(["a long manual"])
    count = VISIBILITY_PAGE + 1000
    await VectorStore(client, small).upsert(
        [_owned(tenant, owner, doc, f"part {n}", vector, index=n) for n in range(count)]
    )
    await VectorStore(client, other).upsert([_owned(tenant, owner, doc, "part 0", vector16)])

    assert await VectorStore(client, None).set_visibility(tenant, owner, doc, "tenant") == count + 1
    for embedder, expected in ((small, count), (other, 1)):
        store = VectorStore(client, embedder)
        shared = client.get_collection(store.collection_name(tenant)).get(
            where={"$and": [{"document_id": str(doc)}, {"visibility": "tenant"}]}, include=[]
        )
        assert len(shared["ids"]) == expected
        [probe] = embedder.embed(["a long manual"])
        assert len(await store.search(tenant, reader, probe, 5)) == min(5, expected)
    await VectorStore(client, None).delete_document(tenant, owner, doc)


async def test_own_chunks_are_found_behind_many_nearer_private_ones(
    stack_env: dict[str, str],
) -> None:
    """The unfiltered first try sees only colleagues' private chunks: the
    search asks Chroma again with the reader filter."""
    embedder = HashingEmbedder(32)
    client = connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"]))
    store = VectorStore(client, embedder)
    tenant, colleague, me = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    [near] = embedder.embed(["travel expense policy"])
    [far] = embedder.embed(["travel expense policy for contractors abroad"])
    k = 5
    crowd = [
        _owned(tenant, colleague, uuid.uuid4(), f"private {n}", near)
        for n in range(k * OVERFETCH + 3)
    ]
    mine, shared = uuid.uuid4(), uuid.uuid4()
    await store.upsert(
        [
            *crowd,
            _owned(tenant, me, mine, "my own", far),
            _owned(tenant, colleague, shared, "shared", far, "tenant"),
        ]
    )
    hits = await store.search(tenant, me, near, k)
    assert {h.document_id for h in hits} == {mine, shared}
    # The colleague's nearest are theirs to read.
    assert len(await store.search(tenant, colleague, near, k)) == k
    # A tenant with no collection yet finds nothing, and gets none made.
    stranger = uuid.uuid4()
    assert await store.search(stranger, stranger, near, k) == []
    assert store.collection_name(stranger) not in {c.name for c in client.list_collections()}


async def test_a_shared_collection_is_split_by_tenant(stack_env: dict[str, str]) -> None:
    """The layout before per-tenant collections: one collection per model,
    every tenant's chunks in it. ``rag migrate`` moves them, vectors and all."""
    client = connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"]))
    embedder = HashingEmbedder(random.randint(100, 999))  # a model of this test's own
    space = space_name(embedder.name, embedder.dim)
    old = client.create_collection(
        space,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"embedding_model": f"{embedder.name}/{embedder.dim}"},
    )
    tenants = [uuid.uuid4(), uuid.uuid4()]
    # Random directions: the hashing embedder's vectors of "chunk <n>" are
    # too alike for an approximate index to tell apart.
    rng = random.Random(5)
    vectors = [[rng.gauss(0, 1) for _ in range(embedder.dim)] for _ in range(2500)]
    # More chunks than one page of the move.
    old.add(
        ids=[f"c{n}" for n in range(2500)],
        embeddings=vectors,
        documents=[f"chunk {n}" for n in range(2500)],
        metadatas=[
            {
                "tenant_id": str(tenants[n % 2]),
                "user_id": str(tenants[n % 2]),
                "document_id": str(tenants[n % 2]),
                "filename": "f.txt",
                "chunk_index": n,
                "visibility": "private",
            }
            for n in range(2500)
        ],
    )
    assert space in {c.name for c in shared_collections(client)}

    assert split_by_tenant(client) >= 2500
    names = {c.name for c in client.list_collections()}
    assert space not in names
    store = VectorStore(client, embedder)
    for i, tenant in enumerate(tenants):
        assert client.get_collection(store.collection_name(tenant)).count() == 1250
        [hit] = await store.search(tenant, tenant, vectors[i], 1)
        assert (hit.text, hit.score) == (f"chunk {i}", pytest.approx(1.0))
    assert split_by_tenant(client) == 0


async def test_group_chunks_reach_the_members_of_their_groups_by_every_path(
    stack_env: dict[str, str],
) -> None:
    """A chunk shared with groups carries one key per group: found by a
    caller in one of them, unfiltered, through a filter (Chroma's where), and
    behind colleagues' nearer private chunks (the reader filter's second
    try); not by a caller in another group, nor once its groups change."""
    from datetime import UTC, datetime

    from shared.contracts.labels import Filters
    from shared.storage.vectorstore import document_fields

    embedder = HashingEmbedder(32)
    store = VectorStore(connect_chroma(Settings(chroma_url=stack_env["CHROMA_URL"])), embedder)
    tenant, owner, member, other, colleague = (uuid.uuid4() for _ in range(5))
    finance, legal = uuid.uuid4(), uuid.uuid4()
    doc = uuid.uuid4()
    [near] = embedder.embed(["the audit findings"])
    [far] = embedder.embed(["the audit findings for the board, in full"])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    grouped = Chunk(
        id=f"{doc}:0:x",
        tenant_id=tenant,
        user_id=owner,
        document_id=doc,
        filename="audit.txt",
        chunk_index=0,
        text="findings",
        embedding=far,
        visibility="groups",
        content_type="text/plain",
        uploaded_at=at,
        tags=("audit",),
        groups=(finance,),
    )
    crowd = [_owned(tenant, colleague, uuid.uuid4(), f"private {n}", near) for n in range(30)]
    await store.upsert([grouped, *crowd])
    tagged = Filters(tags_any=["audit"])

    async def found(user: uuid.UUID, groups: list[uuid.UUID], **more: object) -> bool:
        hits = await store.search(tenant, user, near, 5, groups=groups, **more)  # type: ignore[arg-type]
        return doc in {h.document_id for h in hits}

    for filters in (None, tagged):
        assert await found(member, [legal, finance], filters=filters)
        assert not await found(other, [legal], filters=filters)
        assert not await found(other, [], filters=filters)
    # Shared with legal instead: the copies follow, the finance member loses it.
    wanted = document_fields("text/plain", at, ["audit"], {}, [legal])
    assert await store.set_document_fields(tenant, owner, doc, wanted) == 1
    assert not await found(member, [finance])
    assert await found(other, [legal], filters=tagged)
    # Made private, its group keys no longer make it readable.
    await store.set_visibility(tenant, owner, doc, "private")
    assert not await found(other, [legal]) and not await found(other, [legal], filters=tagged)
    assert await found(owner, [])
