"""The tenant filter lives in Chroma's query itself."""

from __future__ import annotations

import uuid

from shared.config import Settings
from shared.embedding import HashingEmbedder
from shared.vectorstore import Chunk, VectorStore, connect_chroma


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
