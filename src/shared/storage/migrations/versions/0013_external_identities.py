"""External identities: an OpenID provider's user (issuer + subject) -> a user

A user created at their first single sign-on (issue 23) is found again by
the provider's issuer and the token's ``sub``, never by a name: a provider
user whose username matches a local account's is not that account. Such a
user has no password (``password_hash`` may be NULL: password sign-in then
always fails, in the time a wrong password takes).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "external_identities",
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.PrimaryKeyConstraint("issuer", "subject", name="external_identities_pkey"),
    )
    op.alter_column("users", "password_hash", nullable=True)


def downgrade() -> None:
    # Users without a password (single sign-on only) cannot survive the downgrade.
    op.execute("DELETE FROM users WHERE password_hash IS NULL")
    op.alter_column("users", "password_hash", nullable=False)
    op.drop_table("external_identities")
