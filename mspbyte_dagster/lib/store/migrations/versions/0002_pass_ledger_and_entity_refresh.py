"""Ledger: whether a pass ran every stage (the guard's baseline); entities: hash with volatile fields.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_ledger") as batch:
        batch.add_column(sa.Column("all_stages", sa.Boolean(), server_default="0", nullable=False))
    with op.batch_alter_table("entities") as batch:
        batch.add_column(sa.Column("seen_hash", sa.String(length=64), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("entities") as batch:
        batch.drop_column("seen_hash")
    with op.batch_alter_table("pipeline_ledger") as batch:
        batch.drop_column("all_stages")
