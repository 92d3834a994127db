"""Folder sync: sources, the files seen in them, and their runs (issue 23)

``sources``: a directory tree a tenant's admin registered, walked by the
sync workers on a schedule. ``lease_owner``/``lease_until`` say which
worker runs it now (one at a time; taken over once the lease lapses).
``source_files``: one row per file path seen in a source, with the document
it became and the content hash last synced; written before and after each
document is stored, so a run killed half-way resumes without duplicates.
``sync_runs``: each run's owner, times, outcome and counts.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import UUID

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")
_EMPTY = sa.text("'{}'")


def _sources() -> None:
    op.create_table(
        "sources",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "tenant_id",
            UUID(as_uuid=True),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        # The owner of the documents the source makes (the admin who added it).
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("include", postgresql.ARRAY(sa.Text), nullable=False, server_default=_EMPTY),
        sa.Column("exclude", postgresql.ARRAY(sa.Text), nullable=False, server_default=_EMPTY),
        sa.Column("max_bytes", sa.BigInteger, nullable=False),
        sa.Column("visibility", sa.Text, nullable=False),
        # With visibility 'groups': the groups its documents are shared with
        # (a group deleted since drops out; shared.storage.sources.live_groups).
        sa.Column(
            "group_ids",
            postgresql.ARRAY(UUID(as_uuid=True)),
            nullable=False,
            server_default=sa.text("'{}'::uuid[]"),
        ),
        sa.Column("tags", postgresql.ARRAY(sa.Text), nullable=False, server_default=_EMPTY),
        sa.Column("meta", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("interval_seconds", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        # When the schedule next runs it; a "sync now" sets it to now().
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        # Set by DELETE: a worker removes it (and its documents, unless kept).
        sa.Column("removing_at", sa.DateTime(timezone=True)),
        sa.Column("keep_documents", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "name", name="sources_tenant_name"),
    )
    op.create_index("sources_due", "sources", ["next_run_at"])


def _source_files() -> None:
    op.create_table(
        "source_files",
        sa.Column(
            "source_id",
            UUID(as_uuid=True),
            sa.ForeignKey("sources.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("relpath", sa.Text, nullable=False),
        # No foreign key: the document may be deleted by its owner; the next
        # run notices and makes it again.
        sa.Column("document_id", UUID(as_uuid=True)),
        sa.Column("sha256", sa.Text),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("mtime_ns", sa.BigInteger),
        # pending (a document being stored), synced, failed, skipped.
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.PrimaryKeyConstraint("source_id", "relpath", name="source_files_pkey"),
        sa.CheckConstraint(
            "status IN ('pending', 'synced', 'failed', 'skipped')", name="source_files_status"
        ),
    )
    op.create_index("source_files_document", "source_files", ["document_id"])


def _runs() -> None:
    op.create_table(
        "sync_runs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "source_id",
            UUID(as_uuid=True),
            sa.ForeignKey("sources.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("worker", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        # running, ok, partial (some files failed), failed, interrupted.
        sa.Column("outcome", sa.Text, nullable=False, server_default="running"),
        sa.Column("error", sa.Text),
        sa.Column("files_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("files_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "counts", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
    )
    op.create_index("sync_runs_source", "sync_runs", ["source_id", "started_at"])


def upgrade() -> None:
    _sources()
    _source_files()
    _runs()


def downgrade() -> None:
    op.drop_table("sync_runs")
    op.drop_table("source_files")
    op.drop_table("sources")
