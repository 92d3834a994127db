"""The answer cache's generation kept in PostgreSQL, bumped by triggers in
the same transaction as any change to what a tenant's users can read

A cached answer is keyed by its tenant's generation. When the bump was a
separate Redis write after the change, a failed write left answers cached
before a delete, an unshare or a new document servable; bumped by the
change's own transaction, there is no change without its bump.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_STATEMENTS = (
    """
CREATE FUNCTION answers_outdated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tenants SET answer_generation = answer_generation + 1
    WHERE id = COALESCE(NEW.tenant_id, OLD.tenant_id);
    RETURN NULL;
END $$
""",
    # Searchable or not any more, its chunks replaced, or shared or unshared.
    "CREATE TRIGGER documents_outdate_answers AFTER UPDATE ON documents FOR EACH ROW"
    " WHEN ((OLD.status = 'indexed') <> (NEW.status = 'indexed')"
    " OR OLD.visibility IS DISTINCT FROM NEW.visibility"
    " OR (NEW.status = 'indexed' AND OLD.chunks IS DISTINCT FROM NEW.chunks))"
    " EXECUTE FUNCTION answers_outdated()",
    # Deleted by its owner, an admin or the reconciler.
    "CREATE TRIGGER documents_deleted_outdate_answers AFTER DELETE ON documents FOR EACH ROW"
    " WHEN (OLD.status = 'indexed') EXECUTE FUNCTION answers_outdated()",
)


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("answer_generation", sa.BigInteger, nullable=False, server_default="0"),
    )
    # One statement each: the asyncpg driver prepares what it runs.
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER documents_deleted_outdate_answers ON documents")
    op.execute("DROP TRIGGER documents_outdate_answers ON documents")
    op.execute("DROP FUNCTION answers_outdated()")
    op.drop_column("tenants", "answer_generation")
