"""Where a document's last ingest request sits on Kafka (topic, partition,
offset), so the sweeper can tell a document waiting behind others (its
request not consumed yet) from one whose request was consumed and never
settled

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = ("request_topic", "request_partition", "request_offset")


def upgrade() -> None:
    # Nullable: rows queued before this revision (and a request whose
    # position could not be recorded) are swept as before.
    op.add_column("documents", sa.Column("request_topic", sa.Text, nullable=True))
    op.add_column("documents", sa.Column("request_partition", sa.Integer, nullable=True))
    op.add_column("documents", sa.Column("request_offset", sa.BigInteger, nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_column("documents", column)
