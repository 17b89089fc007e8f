"""The old linker pattern: one read per entity, one lookup and one write per edge, one lookup per parent
for removals."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from mspbyte_dagster.lib.adapters.microsoft365.linking import RELATIONSHIP_TYPES, desired_edges
from mspbyte_dagster.lib.legacy.loader import entity_rows
from mspbyte_dagster.lib.linking import LinkCounts
from mspbyte_dagster.lib.store.schema import entity_relationships as edges


def _edge(tenant: str, kind: str, parent: int, child: int):
    return (
        (edges.c.tenant == tenant)
        & (edges.c.relationship_type == kind)
        & (edges.c.parent_id == parent)
        & (edges.c.child_id == child)
    )


class LegacyLinker:
    def __init__(self, conn: Connection):
        self.conn = conn

    def link(self, tenant: str, source: int) -> LinkCounts:
        wanted = desired_edges(entity_rows(self.conn, tenant, source))
        counts = LinkCounts.of(RELATIONSHIP_TYPES)
        for (kind, parent, child), details in wanted.items():
            counts.total[kind] += 1
            row = self.conn.execute(select(edges.c.details).where(_edge(tenant, kind, parent, child))).first()
            if row is None:
                counts.created[kind] += 1
                self.conn.execute(
                    insert(edges).values(
                        tenant=tenant,
                        data_source_id=source,
                        relationship_type=kind,
                        parent_id=parent,
                        child_id=child,
                        details=details,
                    )
                )
            elif row.details != details:
                counts.updated += 1
                self.conn.execute(update(edges).where(_edge(tenant, kind, parent, child)).values(details=details))
        for kind in RELATIONSHIP_TYPES:
            # every parent that has edges, live or not: a deleted group's memberships go too
            parents = (
                self.conn.execute(
                    select(edges.c.parent_id)
                    .distinct()
                    .where(edges.c.tenant == tenant, edges.c.relationship_type == kind)
                )
                .scalars()
                .all()
            )
            for parent in parents:
                for row in self.conn.execute(
                    select(edges.c.child_id).where(
                        edges.c.tenant == tenant, edges.c.relationship_type == kind, edges.c.parent_id == parent
                    )
                ).all():
                    if (kind, parent, row.child_id) not in wanted:
                        counts.removed[kind] += 1
                        self.conn.execute(delete(edges).where(_edge(tenant, kind, parent, row.child_id)))
        return counts
