"""tenants, roles, disabled users, refresh-token families, API keys, shared
documents, and the audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    default = None if nullable else _NOW
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def _user_fk() -> sa.Column[Any]:
    return sa.Column(
        "user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )


def _tenants_and_roles() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        _timestamp("created_at"),
    )
    # Until now every user was a tenant of their own: each keeps it, named
    # after them, and administers it.
    op.execute(
        "INSERT INTO tenants (id, name)"
        " SELECT tenant_id, min(username) FROM users GROUP BY tenant_id"
    )
    op.create_foreign_key(
        "users_tenant_id_fkey", "users", "tenants", ["tenant_id"], ["id"], ondelete="CASCADE"
    )
    op.add_column("users", sa.Column("role", sa.Text, nullable=False, server_default="member"))
    op.execute("UPDATE users SET role = 'admin'")
    op.create_check_constraint("users_role", "users", "role IN ('admin', 'member')")
    op.add_column("users", _timestamp("disabled_at", nullable=True))
    op.create_index("idx_users_tenant_id", "users", ["tenant_id", "username"])


def _credentials() -> None:
    op.create_table(
        "token_families",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _user_fk(),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.Text),
    )
    # Login clears a user's expired sessions: by user, not a scan.
    op.create_index("idx_token_families_user", "token_families", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("jti", sa.Text, primary_key=True),
        sa.Column(
            "family_id",
            UUID(as_uuid=True),
            sa.ForeignKey("token_families.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _timestamp("issued_at"),
        _timestamp("expires_at", nullable=True),
        _timestamp("used_at", nullable=True),
    )
    op.create_index("idx_refresh_tokens_family", "refresh_tokens", ["family_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        _user_fk(),
        sa.Column("name", sa.Text, nullable=False),
        # The first characters, shown in lists so a key can be recognised.
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        _timestamp("created_at"),
        _timestamp("last_used_at", nullable=True),
        _timestamp("revoked_at", nullable=True),
    )
    op.create_index("idx_api_keys_user", "api_keys", ["user_id"])


def _sharing_and_audit() -> None:
    op.add_column(
        "documents", sa.Column("visibility", sa.Text, nullable=False, server_default="private")
    )
    op.create_check_constraint(
        "documents_visibility", "documents", "visibility IN ('private', 'tenant')"
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        # NULL: nobody signed in (a failed login, say).
        sa.Column("actor_id", UUID(as_uuid=True)),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("detail", JSONB, nullable=False, server_default="{}"),
        sa.Column("ip", sa.Text),
        _timestamp("created_at"),
    )
    op.create_index("idx_audit_log_tenant", "audit_log", ["tenant_id", "created_at"])


def upgrade() -> None:
    _tenants_and_roles()
    _credentials()
    _sharing_and_audit()


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_constraint("documents_visibility", "documents")
    op.drop_column("documents", "visibility")
    op.drop_table("api_keys")
    op.drop_table("refresh_tokens")
    op.drop_table("token_families")
    op.drop_index("idx_users_tenant_id", table_name="users")
    op.drop_column("users", "disabled_at")
    op.drop_constraint("users_role", "users")
    op.drop_column("users", "role")
    op.drop_constraint("users_tenant_id_fkey", "users")
    op.drop_table("tenants")
