"""Edges keyed by what they join: (tenant, type, parent, child) becomes the primary key.

The surrogate id and the (tenant, child) index were two more indexes to fill per
edge and nothing looked an edge up by either: linking a 10,000-user tenant
writes 73,000 edges, and its COPY spent most of its server time on indexes
(docs/benchmarks.md, 2026-12-01).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from mspbyte_dagster.lib.store.schema import metadata

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

EDGE_KEY = ["tenant", "relationship_type", "parent_id", "child_id"]


def _unique_key_name() -> str:
    """As the database has it: PostgreSQL cut 0001's name to 63 characters."""
    uniques = sa.inspect(op.get_bind()).get_unique_constraints("entity_relationships")
    return next(unique["name"] for unique in uniques if unique["column_names"] == EDGE_KEY)


def upgrade() -> None:
    unique = _unique_key_name()
    with op.batch_alter_table("entity_relationships", naming_convention=metadata.naming_convention) as batch:
        batch.drop_index("ix_entity_relationships_tenant_child_id")
        batch.drop_constraint(unique, type_="unique")
        batch.drop_constraint("pk_entity_relationships", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("pk_entity_relationships", EDGE_KEY)


def downgrade() -> None:
    with op.batch_alter_table("entity_relationships", naming_convention=metadata.naming_convention) as batch:
        batch.drop_constraint("pk_entity_relationships", type_="primary")
        batch.add_column(sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity()))
        batch.create_primary_key("pk_entity_relationships", ["id"])
        batch.create_unique_constraint(None, EDGE_KEY)  # named by the convention, cut as 0001 was
        batch.create_index(batch.f("ix_entity_relationships_tenant_child_id"), ["tenant", "child_id"])
