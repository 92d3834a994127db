"""Lexical (BM25) retrieval, kept in PostgreSQL so every query-worker replica
sees the same index and every upload or delete updates it at once.

Three tables (migrations 0002, 0005): ``chunks`` holds each indexed chunk's
text and length in terms; ``chunk_terms`` holds, per tenant, which chunk has
which term how often (and the chunk's length again, so scoring reads postings
only); ``tenant_corpus`` holds each tenant's chunk count and total length,
kept by triggers on ``chunks``. BM25 needs a corpus's document frequencies
and average length, which ``ts_rank`` lacks; here they come from the
question's postings and that row inside the same SQL statement that scores,
and the caller's filter sits in that statement too:
the tenant, and chunks of the caller's own documents or of documents the
tenant shares or shares with a group the caller is in (``documents.visibility``
and ``document_groups``, read with the caller's memberships from the rows at
query time, so a visibility or membership change applies at once). No other chunk is ever fetched.

Scoring is BM25 as Lucene computes it: idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``
times ``tf / (tf + k1 * (1 - b + b * length / avgdl))``, the formula of the
``bm25s`` package's default method, so the two can be compared on the same
chunks (tests/integration/test_lexical.py, docs/quality.md).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

import asyncpg
import Stemmer

from shared.contracts.labels import Filters
from shared.storage import documents, groups
from shared.storage.vectorstore import Hit

K1 = 1.5
B = 0.75
_MAX_TERM_CHARS = 40
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Function words, and the words people put around a question ("how do I...").
STOPWORDS = frozenset(
    """a about am an and any are as at be been but by can could did do does doing for from
    had has have having he her here hers him his how i if in into is it its itself me my no
    nor not of off on or our ours she should so some such than that the their theirs them
    then there these they this those to too very was we were what when where which while
    who whom why will with would you your yours""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Stemmed content words: the same function at indexing and at query time."""
    words = [
        w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) <= _MAX_TERM_CHARS
    ]
    stems: list[str] = _stemmer().stemWords(words)
    return stems


@dataclass(frozen=True)
class IndexedChunk:
    """``text`` is stored and shown; ``indexed_text`` (the text in its context,
    by default the text itself) is what the terms are counted in."""

    id: str
    chunk_index: int
    text: str
    page: int | None = None
    section: str | None = None
    indexed_text: str | None = None


# The postings of the question's terms are read first, from the (tenant,
# term) key alone: it carries each posting's tf and chunk length (migration
# 0005), so scoring every candidate touches no chunk row, and the corpus
# statistics are one row kept by triggers, not a pass over the tenant's
# chunks. Only then are the best candidates checked against the reader's
# filter, in score order, until k pass. MATERIALIZED and the LIMIT 1 fence
# keep this shape whatever the planner's statistics say: driven from the
# tenant's chunks instead, it visited every chunk's terms (10k chunks: 630k
# rows, 0.2-0.8 s), and with statistics stale after a bulk load it re-ran the
# corpus aggregate per posting (10 s). At 100k chunks: p95 21 ms, against
# 109 ms reading each posting's chunk first (docs/performance.md, #6). Only
# the top k fetch their text.
_SEARCH = """
WITH postings AS MATERIALIZED (
    SELECT term, chunk_id, tf, length FROM chunk_terms
    WHERE tenant_id = $1 AND term = ANY($3::text[])
), q AS MATERIALIZED (
    SELECT term, count(*)::float8 AS df FROM postings GROUP BY term
), corpus AS MATERIALIZED (
    SELECT chunks::float8 AS n, greatest(total_length::float8 / greatest(chunks, 1), 1) AS avgdl
    FROM tenant_corpus WHERE tenant_id = $1
), scored AS MATERIALIZED (
    SELECT p.chunk_id,
           sum(ln(1 + (corpus.n - q.df + 0.5) / (q.df + 0.5))
               * p.tf
               / (p.tf + $5::float8 * (1 - $6::float8 + $6::float8 * p.length / corpus.avgdl))
           ) AS score
    FROM postings p
    JOIN q USING (term)
    CROSS JOIN corpus
    GROUP BY p.chunk_id
), ranked AS (
    SELECT s.chunk_id, s.score
    FROM (SELECT chunk_id, score FROM scored ORDER BY score DESC, chunk_id OFFSET 0) s
    CROSS JOIN LATERAL (
        SELECT 1 FROM chunks c JOIN documents d ON d.id = c.document_id
        WHERE c.id = s.chunk_id AND c.tenant_id = $1 AND d.tenant_id = $1
          AND {READABLE_D}
          AND ($7::uuid[] IS NULL OR c.document_id = ANY($7::uuid[]))
          AND ($8::text[] IS NULL OR c.tags && $8::text[])
          AND ($9::text[] IS NULL OR c.tags @> $9::text[])
          AND ($10::text IS NULL OR c.meta @> $10::text::jsonb)
          AND ($11::text IS NULL OR d.filename = $11::text)
          AND ($12::text IS NULL OR d.content_type = $12::text)
          AND ($13::timestamptz IS NULL OR d.created_at >= $13::timestamptz)
          AND ($14::timestamptz IS NULL OR d.created_at < $14::timestamptz)
        LIMIT 1
    ) readable
    LIMIT $4
)
SELECT c.id, c.document_id, d.filename, c.chunk_index, c.text, c.page, c.section, s.score
FROM ranked s
JOIN chunks c ON c.id = s.chunk_id
JOIN documents d ON d.id = c.document_id
ORDER BY s.score DESC, c.id
"""
# The reader's filter: the chunk's document is the caller's, shared with the
# tenant, or shared with a group the caller is in now.
_SEARCH = _SEARCH.replace("{READABLE_D}", groups.readable_clause("d"))


INDEX_BATCH = 2000
_CHUNK_COLUMNS = [
    "id",
    "document_id",
    "tenant_id",
    "user_id",
    "chunk_index",
    "text",
    "page",
    "section",
    "length",
]
_Row = tuple[object, ...]


def _rows(
    tenant_id: UUID, user_id: UUID, document_id: UUID, chunks: Sequence[IndexedChunk]
) -> tuple[list[_Row], list[_Row]]:
    """The ``chunks`` rows and ``chunk_terms`` rows of some chunks."""
    chunk_rows: list[_Row] = []
    term_rows: list[_Row] = []
    for c in chunks:
        terms = Counter(tokenize(c.indexed_text or c.text))
        length = sum(terms.values())
        chunk_rows.append(
            (
                c.id,
                document_id,
                tenant_id,
                user_id,
                c.chunk_index,
                c.text,
                c.page,
                c.section,
                length,
            )
        )
        term_rows.extend((tenant_id, term, c.id, tf, length) for term, tf in terms.items())
    return chunk_rows, term_rows


def _filter_arguments(filters: Filters | None) -> tuple[object, ...]:
    """$8-$14 of ``_SEARCH``: NULL where a filter is not set."""
    if filters is None:
        return (None,) * 7
    return (
        sorted(set(filters.tags_any)) if filters.tags_any else None,
        sorted(set(filters.tags_all)) if filters.tags_all else None,
        json.dumps(filters.meta) if filters.meta else None,
        filters.filename,
        filters.content_type,
        filters.uploaded_after,
        filters.uploaded_before,
    )


class LexicalIndex:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def replace_document(
        self,
        tenant_id: UUID,
        user_id: UUID,
        document_id: UUID,
        chunks: Sequence[IndexedChunk],
    ) -> None:
        """Make the index hold exactly ``chunks`` for the document (a replay
        replaces, never duplicates). Raises ``asyncpg.ForeignKeyViolationError``
        when the document row is gone."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The row's labels, copied onto each chunk row; FOR SHARE keeps a
            # PATCH of them (which updates the row and its chunk rows in one
            # transaction) from passing between this read and the commit.
            labelled = await conn.fetchval(
                "SELECT tags <> '{}' OR meta <> '{}'::jsonb FROM documents WHERE id = $1 FOR SHARE",
                document_id,
            )
            await conn.execute("DELETE FROM chunks WHERE document_id = $1", document_id)
            # A batch at a time, counted off the event loop: a long document
            # has millions of terms, and a blocked loop misses Kafka heartbeats.
            for start in range(0, len(chunks), INDEX_BATCH):
                batch = chunks[start : start + INDEX_BATCH]
                chunk_rows, term_rows = await asyncio.to_thread(
                    _rows, tenant_id, user_id, document_id, batch
                )
                await conn.copy_records_to_table(
                    "chunks", records=chunk_rows, columns=_CHUNK_COLUMNS
                )
                await conn.copy_records_to_table(
                    "chunk_terms",
                    records=term_rows,
                    columns=["tenant_id", "term", "chunk_id", "tf", "length"],
                )
            if labelled:
                # Copied onto the chunk rows (an unlabelled document's keep
                # the columns' empty defaults, with no second write).
                await conn.execute(
                    "UPDATE chunks c SET tags = d.tags, meta = d.meta FROM documents d"
                    " WHERE d.id = $1 AND c.document_id = d.id",
                    document_id,
                )

    async def delete_document(self, document_id: UUID) -> None:
        await self._pool.execute("DELETE FROM chunks WHERE document_id = $1", document_id)

    async def search(
        self,
        tenant_id: UUID,
        user_id: UUID,
        question: str,
        k: int,
        document_ids: Sequence[UUID] | None = None,
        filters: Filters | None = None,
    ) -> list[Hit]:
        terms = sorted(set(tokenize(question)))
        if not terms:
            return []
        rows = await self._pool.fetch(
            _SEARCH,
            tenant_id,
            user_id,
            terms,
            k,
            K1,
            B,
            list(document_ids) if document_ids is not None else None,
            *_filter_arguments(filters),
        )
        return [
            Hit(
                chunk_id=row["id"],
                document_id=row["document_id"],
                filename=row["filename"],
                chunk_index=row["chunk_index"],
                text=row["text"],
                score=0.0,
                page=row["page"],
                section=row["section"],
            ).scored("bm25", round(float(row["score"]), 4))
            for row in rows
        ]

    async def readable(
        self, tenant_id: UUID, user_id: UUID, document_ids: Collection[UUID]
    ) -> set[UUID]:
        """Which of ``document_ids`` the caller may read now, by their rows."""
        return await documents.readable_ids(self._pool, tenant_id, user_id, document_ids)

    async def group_ids(self, tenant_id: UUID, user_id: UUID) -> list[UUID]:
        """The groups the caller is in now (for the vector store's filter)."""
        return await groups.ids_of_user(self._pool, tenant_id, user_id)

    async def chunks_of_tenant(self, tenant_id: UUID, user_id: UUID) -> list[tuple[str, str, str]]:
        """(chunk id, filename, text) of every chunk the caller may search:
        what the evaluation's in-process baselines index, so they see the same
        chunks."""
        rows = await self._pool.fetch(
            "SELECT c.id, d.filename, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"  # noqa: S608
            f" WHERE c.tenant_id = $1 AND {groups.readable_clause('d')} ORDER BY c.id",
            tenant_id,
            user_id,
        )
        return [(row["id"], row["filename"], row["text"]) for row in rows]
