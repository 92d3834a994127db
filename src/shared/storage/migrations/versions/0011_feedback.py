"""Feedback on answers: a user's rating of one turn's answer

One row per answered turn (its ``chat_history`` row, the assistant's): a
new rating of the same turn replaces the row, so a user has one rating per
turn. It goes with the turn (foreign key, cascading): deleting the
conversation deletes its turns and their feedback. ``seq`` is taken afresh
from a sequence at every rating, so the tenant's feedback reads newest
first, in pages by ``seq``, a replaced rating moving to the top.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.execute("CREATE SEQUENCE feedback_seq")
    op.create_table(
        "feedback",
        sa.Column(
            "history_id",
            sa.BigInteger,
            sa.ForeignKey("chat_history.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('feedback_seq')")
        ),
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("conversation_id", UUID(as_uuid=True), nullable=False),
        sa.Column("turn", sa.Integer, nullable=False),
        sa.Column("rating", sa.Text, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("wrong_source", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("rating IN ('up', 'down')", name="feedback_rating"),
        sa.CheckConstraint("char_length(comment) <= 2000", name="feedback_comment_length"),
        sa.CheckConstraint("wrong_source >= 1", name="feedback_wrong_source"),
    )
    op.create_index("idx_feedback_tenant", "feedback", ["tenant_id", sa.text("seq DESC")])
    op.create_index(
        "idx_feedback_turn", "feedback", ["tenant_id", "user_id", "conversation_id", "turn"]
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.execute("DROP SEQUENCE feedback_seq")
