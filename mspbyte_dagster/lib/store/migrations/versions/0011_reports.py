"""Tenant reports and fleet posture exports (lib/reports/).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from mspbyte_dagster.lib.store import schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenant_reports",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("html", sa.LargeBinary(), nullable=False),
        sa.Column("csv", sa.LargeBinary(), nullable=False),
        sa.Column("xlsx", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant"], name=op.f("fk_tenant_reports_tenant_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_reports")),
    )
    op.create_index(op.f("ix_tenant_reports_tenant_created_at"), "tenant_reports", ["tenant", "created_at"])
    op.create_table(
        "fleet_posture_exports",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenants", sa.Integer(), nullable=False),
        sa.Column("parquet", sa.LargeBinary(), nullable=False),
        sa.Column("csv", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_posture_exports")),
    )


def downgrade() -> None:
    op.drop_table("fleet_posture_exports")
    op.drop_table("tenant_reports")
