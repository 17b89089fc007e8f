"""Relationships without foreign keys: they are derived data the linker rebuilds from entities.

Checking four foreign keys per edge (tenant, data source, parent, child) more
than doubled the cost of linking a large tenant (docs/benchmarks.md).
Entities are only ever soft-deleted, and edges are written from entity ids read
in the same transaction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

from mspbyte_dagster.lib.store.schema import metadata

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FOREIGN_KEYS = {
    "fk_entity_relationships_tenant_tenants": ("tenants", ["tenant"], ["tenant"]),
    "fk_entity_relationships_data_source_id_data_sources": ("data_sources", ["data_source_id"], ["id"]),
    "fk_entity_relationships_parent_id_entities": ("entities", ["parent_id"], ["id"]),
    "fk_entity_relationships_child_id_entities": ("entities", ["child_id"], ["id"]),
}


def upgrade() -> None:
    with op.batch_alter_table("entity_relationships", naming_convention=metadata.naming_convention) as batch:
        for name in FOREIGN_KEYS:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("entity_relationships", naming_convention=metadata.naming_convention) as batch:
        for name, (table, local, remote) in FOREIGN_KEYS.items():
            batch.create_foreign_key(name, table, local, remote, ondelete="CASCADE")
