"""BM25 in PostgreSQL: the same scores as the bm25s package on the same
chunks, the reader filter (the tenant; own or shared documents) inside the
query however many unreadable chunks score higher, corpus statistics kept
by every write and delete, replays that replace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import bm25s
import numpy as np
import pytest

from shared.storage import documents
from shared.storage.lexical import IndexedChunk, LexicalIndex, tokenize
from shared.storage.migrate import upgrade
from tests.support.rows import document_row

CORPUS = [
    "To claim travel expenses, submit the expense report within 30 days of the trip.",
    "The cafeteria serves lunch from noon; vegetarian options are available daily.",
    "Expense reports above 500 euros need approval from a department head.",
    "Parking permits are issued by facilities; travel by bicycle is encouraged.",
    "Security badges must be worn at all times; lost badges are reported to security.",
    "Reimbursement of travel costs is paid with the next salary after approval.",
]


@pytest.fixture(scope="module")
async def pool(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    await asyncio.to_thread(upgrade, stack_env["DATABASE_URL"])
    created = await asyncpg.create_pool(stack_env["DATABASE_URL"], min_size=1, max_size=2)
    assert created is not None
    yield created
    await created.close()


async def _document(
    pool: asyncpg.Pool,
    tenant: uuid.UUID,
    user: uuid.UUID,
    visibility: documents.Visibility = "private",
) -> uuid.UUID:
    await pool.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant,
        f"lex-{tenant}",
    )
    await pool.execute(
        "INSERT INTO users (id, tenant_id, username, password_hash) VALUES ($1, $2, $3, 'x')"
        " ON CONFLICT DO NOTHING",
        user,
        tenant,
        f"lex-{user}",
    )
    doc = document_row(tenant, user, filename="policy.md", visibility=visibility)
    await documents.insert(pool, doc)
    return doc.id


def _chunks(doc: uuid.UUID, texts: list[str]) -> list[IndexedChunk]:
    return [IndexedChunk(f"{doc}:{i}:h", i, text) for i, text in enumerate(texts)]


async def test_scores_match_bm25s_on_the_same_chunks(pool: asyncpg.Pool) -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    doc = await _document(pool, tenant, user)
    index = LexicalIndex(pool)
    await index.replace_document(tenant, user, doc, _chunks(doc, CORPUS))

    question = "How do I get my travel expenses reimbursed after approval?"
    hits = await index.search(tenant, user, question, k=len(CORPUS))

    reference = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    reference.index([tokenize(t) for t in CORPUS], show_progress=False)
    # Each distinct query term once, as the SQL does.
    query = sorted(set(tokenize(question)))
    expected = reference.get_scores(query)
    ranked = [int(i) for i in np.argsort(-expected, kind="stable") if expected[i] > 0]
    assert [h.chunk_index for h in hits] == ranked
    for hit in hits:
        assert hit.score == pytest.approx(float(expected[hit.chunk_index]), abs=1e-3)
    assert hits[0].text.startswith("Reimbursement of travel costs")


async def test_owner_filter_and_document_filter(pool: asyncpg.Pool) -> None:
    tenant, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    doc_a1, doc_a2 = await _document(pool, tenant, alice), await _document(pool, tenant, alice)
    doc_b = await _document(pool, tenant, bob)
    index = LexicalIndex(pool)
    await index.replace_document(tenant, alice, doc_a1, _chunks(doc_a1, ["alpha budget plan"]))
    await index.replace_document(tenant, alice, doc_a2, _chunks(doc_a2, ["beta budget plan"]))
    await index.replace_document(tenant, bob, doc_b, _chunks(doc_b, ["bob budget secret"]))

    mine = await index.search(tenant, alice, "budget", k=10)
    assert {h.document_id for h in mine} == {doc_a1, doc_a2}
    only = await index.search(tenant, alice, "budget", k=10, document_ids=[doc_a2])
    assert [h.document_id for h in only] == [doc_a2]
    # Another tenant with the same user id sees nothing.
    assert await index.search(uuid.uuid4(), alice, "budget", k=10) == []
    assert [h.text for h in await index.search(tenant, bob, "secret budget", k=10)] == [
        "bob budget secret"
    ]


async def test_a_tenant_searches_its_shared_documents_and_nobody_elses(
    pool: asyncpg.Pool,
) -> None:
    """Tenant A: a1 owns a private and a shared document, a2 one of their
    own; tenant B: b1. A filter on the tenant alone shows a2 the private
    document; one on the user alone hides the shared one; one on visibility
    without the tenant shows it to b1."""
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    a1, a2, b1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    private = await _document(pool, tenant_a, a1)
    shared = await _document(pool, tenant_a, a1, "tenant")
    own = await _document(pool, tenant_a, a2)
    theirs = await _document(pool, tenant_b, b1)
    index = LexicalIndex(pool)
    for tenant, user, doc, text in [
        (tenant_a, a1, private, "private budget of a1"),
        (tenant_a, a1, shared, "shared budget of a1"),
        (tenant_a, a2, own, "own budget of a2"),
        (tenant_b, b1, theirs, "budget of b1"),
    ]:
        await index.replace_document(tenant, user, doc, _chunks(doc, [text]))

    async def found(tenant: uuid.UUID, user: uuid.UUID) -> set[uuid.UUID]:
        return {h.document_id for h in await index.search(tenant, user, "budget", k=10)}

    assert await found(tenant_a, a1) == {private, shared}
    assert await found(tenant_a, a2) == {shared, own}
    assert await found(tenant_b, b1) == {theirs}
    assert await found(tenant_b, a2) == set()  # a2's id in another tenant
    assert {c[0].split(":")[0] for c in await index.chunks_of_tenant(tenant_a, a2)} == {
        str(shared),
        str(own),
    }
    assert await index.readable(tenant_a, a2, [private, shared, own, theirs]) == {shared, own}

    # Unsharing is the row alone: the next search reads it.
    await pool.execute("UPDATE documents SET visibility = 'private' WHERE id = $1", shared)
    assert await found(tenant_a, a2) == {own}
    assert await found(tenant_a, a1) == {private, shared}


async def test_replay_replaces_and_delete_cascades(pool: asyncpg.Pool) -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    doc = await _document(pool, tenant, user)
    index = LexicalIndex(pool)
    for _ in range(2):
        await index.replace_document(tenant, user, doc, _chunks(doc, ["one kettle", "two kettle"]))
    assert len(await index.search(tenant, user, "kettle", k=10)) == 2
    await index.replace_document(tenant, user, doc, _chunks(doc, ["one kettle"]))
    assert len(await index.search(tenant, user, "kettle", k=10)) == 1

    await pool.execute("DELETE FROM documents WHERE id = $1", doc)
    assert await index.search(tenant, user, "kettle", k=10) == []
    left = await pool.fetchval("SELECT count(*) FROM chunk_terms WHERE tenant_id = $1", tenant)
    assert left == 0


async def test_writing_for_a_deleted_document_fails_cleanly(pool: asyncpg.Pool) -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    gone = uuid.uuid4()
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await LexicalIndex(pool).replace_document(tenant, user, gone, _chunks(gone, ["x y"]))


async def test_a_question_of_stopwords_finds_nothing(pool: asyncpg.Pool) -> None:
    assert await LexicalIndex(pool).search(uuid.uuid4(), uuid.uuid4(), "how do I", k=5) == []


async def _corpus(pool: asyncpg.Pool, tenant: uuid.UUID) -> tuple[tuple[int, int], tuple[int, int]]:
    """The tenant's statistics row, and the same counted from its chunks."""
    kept = await pool.fetchrow(
        "SELECT chunks, total_length FROM tenant_corpus WHERE tenant_id = $1", tenant
    )
    counted = await pool.fetchrow(
        "SELECT count(*), coalesce(sum(length), 0) FROM chunks WHERE tenant_id = $1", tenant
    )
    return (tuple(kept) if kept else (0, 0)), tuple(counted)  # type: ignore[return-value]


async def test_corpus_statistics_follow_every_write_and_delete(pool: asyncpg.Pool) -> None:
    tenant, user = uuid.uuid4(), uuid.uuid4()
    first, second = await _document(pool, tenant, user), await _document(pool, tenant, user)
    index = LexicalIndex(pool)
    await index.replace_document(tenant, user, first, _chunks(first, CORPUS))
    kept, counted = await _corpus(pool, tenant)
    assert kept == counted and kept[0] == len(CORPUS) and kept[1] > len(CORPUS)
    # A replay replaces; another document adds; a smaller version removes.
    await index.replace_document(tenant, user, first, _chunks(first, CORPUS))
    await index.replace_document(tenant, user, second, _chunks(second, ["kettle descaling"]))
    await index.replace_document(tenant, user, first, _chunks(first, CORPUS[:2]))
    kept, counted = await _corpus(pool, tenant)
    assert kept == counted and kept[0] == 3
    # Deleted through the index, and by the cascade from the document row.
    await index.delete_document(second)
    assert (await _corpus(pool, tenant))[0] == (2, counted[1] - 2)
    await pool.execute("DELETE FROM documents WHERE id = $1", first)
    assert await _corpus(pool, tenant) == ((0, 0), (0, 0))


async def test_a_readers_chunks_are_found_below_many_they_cannot_read(
    pool: asyncpg.Pool,
) -> None:
    """Scores are computed for every posting first and the reader's filter
    is applied in score order: 300 better-scoring private chunks of a
    colleague do not hide the one the reader may read."""
    tenant, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    crowd, mine = await _document(pool, tenant, bob), await _document(pool, tenant, alice)
    index = LexicalIndex(pool)
    await index.replace_document(
        tenant, bob, crowd, _chunks(crowd, [f"budget budget forecast {n}" for n in range(300)])
    )
    await index.replace_document(
        tenant, alice, mine, _chunks(mine, ["the budget is in the appendix of the long report"])
    )
    [hit] = await index.search(tenant, alice, "budget forecast", k=3)
    assert hit.document_id == mine
    assert len(await index.search(tenant, bob, "budget forecast", k=3)) == 3


async def test_labels_reach_the_chunk_rows_and_filter_inside_the_query(
    pool: asyncpg.Pool,
) -> None:
    """Issue 22: the row's labels are copied onto its chunk rows when they
    are written, follow a change (documents.set_labels, one transaction),
    and each filter narrows the search in the SQL."""
    from datetime import timedelta

    from shared.contracts.labels import Filters

    tenant, user = uuid.uuid4(), uuid.uuid4()
    labelled, plain = await _document(pool, tenant, user), await _document(pool, tenant, user)
    async with pool.acquire() as conn:
        assert await documents.set_labels(
            conn, tenant, user, labelled, ["finance", "q3"], {"team": "accounts"}
        )
    index = LexicalIndex(pool)
    await index.replace_document(tenant, user, labelled, _chunks(labelled, ["budget review"]))
    await index.replace_document(tenant, user, plain, _chunks(plain, ["budget draft"]))
    row = await pool.fetchrow(
        "SELECT tags, meta::text AS meta FROM chunks WHERE document_id = $1", labelled
    )
    assert (row["tags"], row["meta"]) == (["finance", "q3"], '{"team": "accounts"}')

    async def found(**filters: object) -> set[uuid.UUID]:
        hits = await index.search(tenant, user, "budget", 10, filters=Filters(**filters))
        return {h.document_id for h in hits}

    created = (await documents.by_id(pool, labelled)).created_at  # type: ignore[union-attr]
    assert await found() == {labelled, plain}
    assert await found(tags_any=["finance", "nope"]) == {labelled}
    assert await found(tags_all=["finance", "nope"]) == set()
    assert await found(meta={"team": "accounts"}) == {labelled}
    assert await found(meta={"team": "other"}) == set()
    assert await found(filename="policy.md") == {labelled, plain}
    assert await found(content_type="application/pdf") == set()
    assert await found(uploaded_after=created - timedelta(minutes=1)) == {labelled, plain}
    assert await found(uploaded_before=created - timedelta(minutes=1)) == set()

    # A change moves the chunk rows with the row; another user's is refused.
    async with pool.acquire() as conn:
        assert await documents.set_labels(conn, tenant, user, labelled, [], None)
        assert not await documents.set_labels(conn, tenant, uuid.uuid4(), labelled, ["x"], None)
    assert await found(tags_any=["finance"]) == set()
    assert await found(meta={"team": "accounts"}) == {labelled}
    # A replay copies the row's labels again.
    await index.replace_document(tenant, user, labelled, _chunks(labelled, ["budget review"]))
    assert await found(meta={"team": "accounts"}) == {labelled}
