"""Operator decisions about a tenant (`tenants set-azure-id`), kept with their reason; and the flags
last read from Redis, which runs use while Redis does not answer.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from mspbyte_dagster.lib.store import schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("change", sa.String(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant"], name=op.f("fk_tenant_changes_tenant_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_changes")),
    )

    op.create_table(
        "flags_last_read",
        sa.Column("prefix", sa.String(length=128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("read_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prefix", name=op.f("pk_flags_last_read")),
    )


def downgrade() -> None:
    op.drop_table("flags_last_read")
    op.drop_table("tenant_changes")
