"""chunks and chunk_terms: the lexical (BM25) index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "document_id",
            UUID(as_uuid=True),
            sa.ForeignKey("documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("page", sa.Integer),
        sa.Column("section", sa.Text),
        sa.Column("length", sa.Integer, nullable=False),
    )
    op.create_index("idx_chunks_document_id", "chunks", ["document_id"])
    op.create_index("idx_chunks_tenant_user", "chunks", ["tenant_id", "user_id"])
    op.create_table(
        "chunk_terms",
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        sa.Column("term", sa.Text, nullable=False),
        sa.Column(
            "chunk_id", sa.Text, sa.ForeignKey("chunks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("tf", sa.Integer, nullable=False),
        # Postings are read by (tenant, term): the key is the index.
        sa.PrimaryKeyConstraint("tenant_id", "term", "chunk_id"),
    )
    # The cascade from chunks deletes by chunk id.
    op.create_index("idx_chunk_terms_chunk_id", "chunk_terms", ["chunk_id"])


def downgrade() -> None:
    op.drop_table("chunk_terms")
    op.drop_table("chunks")
