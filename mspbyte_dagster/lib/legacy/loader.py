"""The old DataContextLoader pattern: list each type's ids, then fetch every entity and its edges on their own."""

from __future__ import annotations

from sqlalchemy import Connection, select

from mspbyte_dagster.lib.context import (
    EntityRow,
    TenantContext,
    build_context,
    edges_query,
    header_query,
    live_entities_query,
    read_other_sources,
    tenant_header,
)
from mspbyte_dagster.lib.model import ENTITY_TYPES
from mspbyte_dagster.lib.store.schema import entities, entity_relationships


def entity_rows(conn: Connection, tenant: str, data_source_id: int) -> list[EntityRow]:
    """Each type's ids, then every entity on its own."""
    rows = []
    for entity_type in ENTITY_TYPES:
        ids = conn.execute(
            live_entities_query(tenant, data_source_id)
            .with_only_columns(entities.c.id)
            .where(entities.c.entity_type == entity_type)
        ).scalars()
        for entity_id in list(ids):
            row = conn.execute(
                select(
                    entities.c.id, entities.c.entity_type, entities.c.external_id, entities.c.state, entities.c.data
                ).where(entities.c.tenant == tenant, entities.c.id == entity_id)
            ).one()
            rows.append(EntityRow(row.id, row.entity_type, row.external_id, row.state, row.data))
    return rows


class LegacyContextLoader:
    def __init__(self, conn: Connection):
        self.conn = conn

    def load(self, tenant: str) -> TenantContext:
        header = tenant_header(self.conn.execute(header_query(tenant)).one())
        rows = entity_rows(self.conn, tenant, header.data_source_id)
        edges = []  # each entity's outgoing edges on their own
        for row in rows:
            edges += self.conn.execute(
                edges_query(tenant, header.data_source_id).where(entity_relationships.c.parent_id == row.id)
            ).all()
        # the other integrations' sources have no legacy pattern: read as the new path reads them
        other = read_other_sources(self.conn, tenant, header)
        if other.ids:
            edges += self.conn.execute(edges_query(tenant).where(entity_relationships.c.data_source_id.in_(other.ids)))
        return build_context(header, rows, edges, other.rows, other.sources, other.removed)
