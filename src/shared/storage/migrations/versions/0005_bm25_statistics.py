"""BM25 without a pass over the tenant's chunks: each posting carries its
chunk's length, the postings key covers what scoring reads, and a per-tenant
row keeps the corpus statistics

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Statement-level, over the rows the statement changed: one update per
# statement (a COPY of 2,000 chunks, a cascade from a deleted document), not
# one per row. Every path that adds or removes chunks goes through them.
_TRIGGERS = (
    """
CREATE FUNCTION tenant_corpus_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenant_corpus AS t (tenant_id, chunks, total_length)
    SELECT tenant_id, count(*), sum(length) FROM added GROUP BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
        SET chunks = t.chunks + EXCLUDED.chunks,
            total_length = t.total_length + EXCLUDED.total_length;
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION tenant_corpus_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tenant_corpus t
    SET chunks = t.chunks - r.chunks, total_length = t.total_length - r.total_length
    FROM (SELECT tenant_id, count(*) AS chunks, sum(length) AS total_length
          FROM removed GROUP BY tenant_id) r
    WHERE t.tenant_id = r.tenant_id;
    RETURN NULL;
END $$
""",
    "CREATE TRIGGER chunks_counted_in AFTER INSERT ON chunks REFERENCING NEW TABLE AS added"
    " FOR EACH STATEMENT EXECUTE FUNCTION tenant_corpus_add()",
    "CREATE TRIGGER chunks_counted_out AFTER DELETE ON chunks REFERENCING OLD TABLE AS removed"
    " FOR EACH STATEMENT EXECUTE FUNCTION tenant_corpus_remove()",
)


def upgrade() -> None:
    op.add_column("chunk_terms", sa.Column("length", sa.Integer))
    op.execute("UPDATE chunk_terms t SET length = c.length FROM chunks c WHERE c.id = t.chunk_id")
    op.alter_column("chunk_terms", "length", nullable=False)
    # The postings of a term are then read from the index alone (an
    # index-only scan), instead of one heap page per posting.
    op.drop_constraint("chunk_terms_pkey", "chunk_terms", type_="primary")
    op.execute(
        "ALTER TABLE chunk_terms ADD CONSTRAINT chunk_terms_pkey"
        " PRIMARY KEY (tenant_id, term, chunk_id) INCLUDE (tf, length)"
    )
    op.create_table(
        "tenant_corpus",
        sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("chunks", sa.BigInteger, nullable=False),
        sa.Column("total_length", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO tenant_corpus (tenant_id, chunks, total_length)"
        " SELECT tenant_id, count(*), coalesce(sum(length), 0) FROM chunks GROUP BY tenant_id"
    )
    # One statement each: the asyncpg driver prepares what it runs.
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER chunks_counted_out ON chunks")
    op.execute("DROP TRIGGER chunks_counted_in ON chunks")
    op.execute("DROP FUNCTION tenant_corpus_remove()")
    op.execute("DROP FUNCTION tenant_corpus_add()")
    op.drop_table("tenant_corpus")
    op.drop_constraint("chunk_terms_pkey", "chunk_terms", type_="primary")
    op.create_primary_key("chunk_terms_pkey", "chunk_terms", ["tenant_id", "term", "chunk_id"])
    op.drop_column("chunk_terms", "length")
