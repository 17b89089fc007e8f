"""Edges take their created_at from the server's clock: a linker no longer sends it.

Parsing a time from each line of a first pass's COPY was a fifth of its server
time (73,000 edges at 10,000 users; docs/benchmarks.md, 2026-12-01, fifth
session). The column keeps its meaning, when an edge was first linked: the
time its pass's transaction began.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from mspbyte_dagster.lib.store.schema import UTCDateTime, metadata

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _created_at(default) -> None:
    with op.batch_alter_table("entity_relationships", naming_convention=metadata.naming_convention) as batch:
        batch.alter_column(
            "created_at", existing_type=UTCDateTime(timezone=True), existing_nullable=False, server_default=default
        )


def upgrade() -> None:
    _created_at(sa.func.now())


def downgrade() -> None:
    _created_at(None)
