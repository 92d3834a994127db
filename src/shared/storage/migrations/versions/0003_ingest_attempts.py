"""documents.attempts: deliveries of a document that began processing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Counted on the row, not in a worker's memory: a worker that dies on a
    # document cannot forget that it tried.
    op.add_column(
        "documents", sa.Column("attempts", sa.Integer, nullable=False, server_default="0")
    )
    # The sweeper's question, "which unsettled documents have not moved for
    # a while", reads only this small index.
    op.create_index(
        "idx_documents_unsettled",
        "documents",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('queued', 'processing')"),
    )


def downgrade() -> None:
    op.drop_index("idx_documents_unsettled", table_name="documents")
    op.drop_column("documents", "attempts")
