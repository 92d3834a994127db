"""Groups: a tenant's groups, their members, and documents shared with them

A document's visibility gains ``groups``: it is read by its owner and by the
members of the groups it is shared with (``document_groups``). A group is
made by a tenant's admin (origin ``local``) or by a sign-in whose groups
claim names it (origin ``claim``); a membership is an admin's (``admin``)
or the claim's (``claim``), kept apart so a sign-in rewrites only its own.

Every link carries its tenant, and composite foreign keys tie it to the
tenant of both ends: the database itself refuses a member or a document of
one tenant in a group of another. Triggers bump the tenant's answer-cache
generation in the transaction of every membership or sharing change
(migration 0006's function), so a user removed from a group is never served
an answer cached while they were in it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")
_LINKS = ("group_members", "document_groups")


def _uuid(name: str, *, primary_key: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UUID(as_uuid=True), nullable=False, primary_key=primary_key)


def upgrade() -> None:
    # Targets for the composite foreign keys: (id, tenant_id) of each end.
    op.create_unique_constraint("users_id_tenant", "users", ["id", "tenant_id"])
    op.create_unique_constraint("documents_id_tenant", "documents", ["id", "tenant_id"])
    op.create_table(
        "groups",
        _uuid("id", primary_key=True),
        _uuid("tenant_id"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("id", "tenant_id", name="groups_id_tenant"),
        sa.CheckConstraint("origin IN ('local', 'claim')", name="groups_origin"),
    )
    op.execute("CREATE UNIQUE INDEX groups_tenant_name ON groups (tenant_id, lower(name))")
    op.create_table(
        "group_members",
        _uuid("group_id"),
        _uuid("user_id"),
        _uuid("tenant_id"),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.PrimaryKeyConstraint("group_id", "user_id", "origin", name="group_members_pkey"),
        sa.ForeignKeyConstraint(
            ["group_id", "tenant_id"], ["groups.id", "groups.tenant_id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id", "tenant_id"], ["users.id", "users.tenant_id"], ondelete="CASCADE"
        ),
        sa.CheckConstraint("origin IN ('admin', 'claim')", name="group_members_origin"),
    )
    # Readers ask "which groups is this user in".
    op.create_index("group_members_user", "group_members", ["user_id", "group_id"])
    op.create_table(
        "document_groups",
        _uuid("document_id"),
        _uuid("group_id"),
        _uuid("tenant_id"),
        sa.PrimaryKeyConstraint("document_id", "group_id", name="document_groups_pkey"),
        sa.ForeignKeyConstraint(
            ["document_id", "tenant_id"],
            ["documents.id", "documents.tenant_id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id", "tenant_id"], ["groups.id", "groups.tenant_id"], ondelete="CASCADE"
        ),
    )
    op.create_index("document_groups_group", "document_groups", ["group_id"])
    op.drop_constraint("documents_visibility", "documents")
    op.create_check_constraint(
        "documents_visibility", "documents", "visibility IN ('private', 'groups', 'tenant')"
    )
    for table in _LINKS:
        op.execute(
            f"CREATE TRIGGER {table}_outdate_answers AFTER INSERT OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION answers_outdated()"
        )


def downgrade() -> None:
    for table in _LINKS:
        op.execute(f"DROP TRIGGER {table}_outdate_answers ON {table}")
    # Documents shared with groups fall back to their owner alone.
    op.execute("UPDATE documents SET visibility = 'private' WHERE visibility = 'groups'")
    op.drop_constraint("documents_visibility", "documents")
    op.create_check_constraint(
        "documents_visibility", "documents", "visibility IN ('private', 'tenant')"
    )
    op.drop_table("document_groups")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_constraint("documents_id_tenant", "documents")
    op.drop_constraint("users_id_tenant", "users")
