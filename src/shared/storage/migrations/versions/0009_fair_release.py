"""Documents wait in PostgreSQL until released to Kafka, a few per tenant at
a time (docs/architecture.md, "Fair ingestion")

``lane``: interactive uploads are released before a tenant's bulk work
(imports, re-indexes). ``released_at``: when the document's request was
published; ``NULL`` while it waits here (``correlation_id``: the request's,
from the upload that queued it, for the logs). Every row that exists now was
published when it was queued, so it counts as released. A change that can
let a releaser release more (a document handed over to wait, one settled
or deleted while released) notifies ``rag_ingest_queue`` with its requests
topic, so releasers wake at once instead of at their next poll.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_STATEMENTS = (
    "UPDATE documents SET released_at = updated_at",
    # The waiting documents of a deployment, per tenant, in release order.
    "CREATE INDEX documents_waiting ON documents"
    " (request_topic, tenant_id, (lane = 'bulk'), created_at, id)"
    " WHERE status = 'queued' AND released_at IS NULL",
    # The released, unsettled documents of a deployment, per tenant.
    "CREATE INDEX documents_released ON documents (request_topic, tenant_id)"
    " WHERE status IN ('queued', 'processing') AND released_at IS NOT NULL",
    """
CREATE FUNCTION ingest_queue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rag_ingest_queue', COALESCE(NEW.request_topic, OLD.request_topic, ''));
    RETURN NULL;
END $$
""",
    "CREATE TRIGGER documents_wait AFTER INSERT OR UPDATE ON documents FOR EACH ROW"
    " WHEN (NEW.status = 'queued' AND NEW.released_at IS NULL AND NEW.request_topic IS NOT NULL)"
    " EXECUTE FUNCTION ingest_queue_changed()",
    "CREATE TRIGGER documents_settle AFTER UPDATE ON documents FOR EACH ROW"
    " WHEN (OLD.released_at IS NOT NULL AND OLD.status IN ('queued', 'processing')"
    " AND NEW.status NOT IN ('queued', 'processing'))"
    " EXECUTE FUNCTION ingest_queue_changed()",
    "CREATE TRIGGER documents_gone AFTER DELETE ON documents FOR EACH ROW"
    " WHEN (OLD.status IN ('queued', 'processing')) EXECUTE FUNCTION ingest_queue_changed()",
)


def upgrade() -> None:
    op.add_column(
        "documents",
        sa.Column("lane", sa.Text, nullable=False, server_default="interactive"),
    )
    op.create_check_constraint("documents_lane", "documents", "lane IN ('interactive', 'bulk')")
    op.add_column("documents", sa.Column("released_at", sa.DateTime(timezone=True)))
    op.add_column("documents", sa.Column("correlation_id", sa.Text))
    # One statement each: the asyncpg driver prepares what it runs.
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for trigger in ("documents_gone", "documents_settle", "documents_wait"):
        op.execute(f"DROP TRIGGER {trigger} ON documents")
    op.execute("DROP FUNCTION ingest_queue_changed()")
    op.drop_index("documents_released", "documents")
    op.drop_index("documents_waiting", "documents")
    op.drop_column("documents", "correlation_id")
    op.drop_column("documents", "released_at")
    op.drop_constraint("documents_lane", "documents")
    op.drop_column("documents", "lane")
