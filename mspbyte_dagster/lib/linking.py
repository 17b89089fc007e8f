"""Edges in bulk, for every integration's linker: the wanted edges of a data source against the stored
ones, synced in a handful of statements whatever their number."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter

from sqlalchemy import Connection, bindparam, delete, select

from mspbyte_dagster.lib.store.bulk import batched_rows, bulk_insert_values
from mspbyte_dagster.lib.store.schema import entity_relationships

EdgeKey = tuple[str, int, int]  # (relationship type, parent entity id, child entity id)
EDGE_COLUMNS = ["tenant", "data_source_id", "relationship_type", "parent_id", "child_id", "details"]  # created_at:
# the server's clock (migration 0016; parsing a time from the COPY text was a fifth of its server time)


@dataclass
class LinkCounts:
    created: dict[str, int] = field(default_factory=dict)  # by relationship type
    removed: dict[str, int] = field(default_factory=dict)
    updated: int = 0
    total: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, kinds: tuple[str, ...]) -> LinkCounts:
        """Zero of each kind a linker writes, so every kind shows in the figures."""
        return cls(dict.fromkeys(kinds, 0), dict.fromkeys(kinds, 0), 0, dict.fromkeys(kinds, 0))

    def as_json(self) -> dict:
        return {"created": self.created, "removed": self.removed, "updated": self.updated, "edges": self.total}


def _edge_key(key: EdgeKey) -> dict:
    return {"edge_type": key[0], "edge_parent": key[1], "edge_child": key[2]}


def sync_edges(
    conn: Connection,
    tenant: str,
    source: int,
    wanted: dict[EdgeKey, dict | None],
    kinds: tuple[str, ...],
) -> LinkCounts:
    """Make a data source's edges what `wanted` says in a handful of statements: read them, bulk delete
    what no longer holds, update changed details, bulk insert the new ones."""
    c = entity_relationships.c
    existing = {
        (kind, parent, child): details
        for kind, parent, child, details in batched_rows(
            conn.execute(
                select(c.relationship_type, c.parent_id, c.child_id, c.details).where(
                    c.tenant == tenant, c.data_source_id == source
                )
            )
        )
    }
    counts = LinkCounts.of(kinds)
    stale = []
    for key in existing:
        if key not in wanted:
            stale.append(_edge_key(key))
            counts.removed[key[0]] += 1
    changed, fresh = [], []
    for key, details in wanted.items():
        counts.total[key[0]] += 1
        if key not in existing:
            counts.created[key[0]] += 1
            fresh.append((tenant, source, *key, details))
        elif existing[key] != details:
            changed.append(_edge_key(key) | {"new_details": details})
    by_key = (
        (c.tenant == tenant)
        & (c.relationship_type == bindparam("edge_type"))
        & (c.parent_id == bindparam("edge_parent"))
        & (c.child_id == bindparam("edge_child"))
    )
    if stale:
        conn.execute(delete(entity_relationships).where(by_key), stale)
    if changed:
        conn.execute(entity_relationships.update().where(by_key).values(details=bindparam("new_details")), changed)
        counts.updated = len(changed)
    fresh.sort(key=itemgetter(2, 3, 4))  # the table's key order: its index fills page after page
    bulk_insert_values(conn, entity_relationships, EDGE_COLUMNS, fresh)
    return counts
