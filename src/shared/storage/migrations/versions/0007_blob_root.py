"""The blob root this database's documents live in: the id of the marker
file written in ``BLOB_DIR`` when the store was first used, so that the
reconciler can tell this deployment's blob root from a missing, empty or
foreign one before it deletes anything

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row at most: the primary key is a constant.
    op.create_table(
        "blob_root",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("marker", UUID(as_uuid=True), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("singleton", name="blob_root_singleton"),
    )


def downgrade() -> None:
    op.drop_table("blob_root")
