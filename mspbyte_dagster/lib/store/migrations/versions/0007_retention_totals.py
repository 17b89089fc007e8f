"""Durable totals for the metrics, so pruning old ledger rows and alert events (and offboarding a
tenant) never makes a counter go down: `metric_totals` and each source's `metric_marks` row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_totals",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("figure", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source", "figure", name=op.f("pk_metric_totals")),
    )
    op.create_table(
        "metric_marks",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("mark", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_metric_marks")),
    )


def downgrade() -> None:
    op.drop_table("metric_marks")
    op.drop_table("metric_totals")
