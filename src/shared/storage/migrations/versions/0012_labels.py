"""Tags and metadata on documents and their chunks (issue 22)

``tags``: a document's labels; ``meta``: a small map of string metadata
(both bounded and validated by the gateway, shared.contracts.labels). Kept
on the document row, which the API reads and PATCH changes, and copied onto
each of its ``chunks`` rows, which the BM25 search filters on (a PATCH
updates both in one transaction; Chroma's copy in the chunk metadata is
brought in line after it, as visibility is).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLES = ("documents", "chunks")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(
            table,
            sa.Column(
                "tags", postgresql.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")
            ),
        )
        op.add_column(
            table,
            sa.Column(
                "meta", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
            ),
        )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_column(table, "meta")
        op.drop_column(table, "tags")
