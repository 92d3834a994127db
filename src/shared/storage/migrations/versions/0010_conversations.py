"""Conversations a user can list, read, continue, rename and delete

``conversations``: one row per conversation of a user (its title, from the
first question until renamed; its number of turns; its last activity),
keyed by tenant, user and id: an id names a conversation of its user only,
so the same id used by another user is another conversation, never a way
into this one. ``chat_history.turn`` numbers a conversation's exchanges
(question and answer share it) from 1, what feedback and clients point at.

Both are kept by a trigger on ``chat_history`` rather than by the code that
inserts the turns: every writer (a query worker of this release, one of
the release before during a rolling upgrade) files its turns the same way,
and a turn's conversation exists before the turn (the foreign key through
which deleting a conversation deletes its turns). The user's row takes the
conversation's next number under the conversation row's lock, the
assistant's row the number its question just took: two exchanges of one
conversation written at once are numbered one after the other.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")

_STATEMENTS = (
    # A title from a question: its words on one line, at most 80 characters.
    """
CREATE FUNCTION conversation_title(question text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN char_length(t) > 80 THEN left(t, 79) || '…' ELSE t END
    FROM (SELECT btrim(regexp_replace(question, '\\s+', ' ', 'g')) AS t) words
$$
""",
    # Existing history: question and answer were written together, in that
    # order, so each role's n-th row is the n-th exchange.
    "UPDATE chat_history h SET turn = numbered.turn FROM (SELECT id, row_number() OVER"
    " (PARTITION BY tenant_id, user_id, conversation_id, role ORDER BY id) AS turn"
    " FROM chat_history) numbered WHERE h.id = numbered.id",
    "INSERT INTO conversations (tenant_id, user_id, id, title, turns, created_at, last_active_at)"
    " SELECT tenant_id, user_id, conversation_id, conversation_title(coalesce("
    "(array_agg(content ORDER BY id) FILTER (WHERE role = 'user'))[1], '')),"
    " count(*) FILTER (WHERE role = 'user'), min(created_at), max(created_at)"
    " FROM chat_history GROUP BY tenant_id, user_id, conversation_id",
    """
CREATE FUNCTION chat_history_file_turn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.role = 'user' THEN
        INSERT INTO conversations AS c (tenant_id, user_id, id, title, turns)
        VALUES (NEW.tenant_id, NEW.user_id, NEW.conversation_id,
                conversation_title(NEW.content), 1)
        ON CONFLICT (tenant_id, user_id, id)
        DO UPDATE SET turns = c.turns + 1, last_active_at = now()
        RETURNING c.turns INTO NEW.turn;
    ELSE
        SELECT c.turns INTO NEW.turn FROM conversations c
        WHERE c.tenant_id = NEW.tenant_id AND c.user_id = NEW.user_id
          AND c.id = NEW.conversation_id;
    END IF;
    RETURN NEW;
END $$
""",
    "CREATE TRIGGER chat_history_file_turn BEFORE INSERT ON chat_history FOR EACH ROW"
    " EXECUTE FUNCTION chat_history_file_turn()",
)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("turns", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column(
            "last_active_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", "id"),
    )
    # A user's conversations, the most recently active first (keyset pages).
    op.create_index(
        "idx_conversations_activity",
        "conversations",
        ["tenant_id", "user_id", sa.text("last_active_at DESC"), sa.text("id DESC")],
    )
    op.add_column("chat_history", sa.Column("turn", sa.Integer))
    # One statement each: the asyncpg driver prepares what it runs.
    for statement in _STATEMENTS:
        op.execute(statement)
    op.alter_column("chat_history", "turn", nullable=False)
    op.create_foreign_key(
        "chat_history_conversation",
        "chat_history",
        "conversations",
        ["tenant_id", "user_id", "conversation_id"],
        ["tenant_id", "user_id", "id"],
        ondelete="CASCADE",
    )
    op.create_index(
        "idx_chat_history_turns",
        "chat_history",
        ["tenant_id", "user_id", "conversation_id", "turn"],
    )


def downgrade() -> None:
    op.drop_index("idx_chat_history_turns", "chat_history")
    op.drop_constraint("chat_history_conversation", "chat_history")
    op.execute("DROP TRIGGER chat_history_file_turn ON chat_history")
    op.execute("DROP FUNCTION chat_history_file_turn()")
    op.execute("DROP FUNCTION conversation_title(text)")
    op.drop_column("chat_history", "turn")
    op.drop_index("idx_conversations_activity", "conversations")
    op.drop_table("conversations")
