"""Microsoft365Linker: the tenant's relationships, synced (added and removed) in bulk.

Edges are derived from the TenantContext, so they are exactly what the rules
see. An edge that no longer holds is deleted: a membership, role or licence
that goes away takes its alerts with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select

from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.store.bulk import bulk_insert
from mspbyte_dagster.lib.store.schema import entity_relationships

RELATIONSHIP_TYPES = ("member_of", "assigned_role", "eligible_role", "applies_to", "has_license")
EdgeKey = tuple[str, int, int]  # (relationship type, parent entity id, child entity id)


def desired_edges(context: TenantContext) -> dict[EdgeKey, dict | None]:
    """Every edge the context implies, with its details (direct or through which groups)."""
    ids = context.entity_ids
    edges: dict[EdgeKey, dict | None] = {}  # None: an edge with nothing to say (no JSON to write)
    for gid, users in context.group_users.items():
        direct = {m["id"] for m in context.groups[gid].get("members") or []}
        for uid in users:
            edges[("member_of", ids[("group", gid)], ids[("user", uid)])] = {"direct": uid in direct}
    for rid, holders in context.role_holders.items():
        for uid in holders:
            via = sorted(context.role_via_groups.get((rid, uid), ()))
            direct = uid in {a["principalId"] for a in context.roles[rid].get("assignments") or []}
            edges[("assigned_role", ids[("role", rid)], ids[("user", uid)])] = {"direct": direct, "via_groups": via}
    for rid, holders in context.eligible_holders.items():
        for uid in holders:
            edges[("eligible_role", ids[("role", rid)], ids[("user", uid)])] = None
    for pid, users in context.policy_users.items():
        for uid in users:
            edges[("applies_to", ids[("policy", pid)], ids[("user", uid)])] = None
    for sku_id, holders in context.sku_holders.items():
        if ("sku", sku_id) not in ids:
            continue  # a licence of a sku the tenant no longer subscribes to: no sku entity to link
        for uid in holders:
            edges[("has_license", ids[("sku", sku_id)], ids[("user", uid)])] = None
    return edges


@dataclass
class LinkCounts:
    created: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELATIONSHIP_TYPES, 0))
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELATIONSHIP_TYPES, 0))
    updated: int = 0
    total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELATIONSHIP_TYPES, 0))

    def as_json(self) -> dict:
        return {"created": self.created, "removed": self.removed, "updated": self.updated, "edges": self.total}


class Microsoft365Linker:
    """Syncs a tenant's edges in a handful of statements: one read, bulk delete, bulk insert."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def link(self, context: TenantContext, now: datetime) -> LinkCounts:
        tenant, source = context.tenant, context.header.data_source_id
        wanted = desired_edges(context)
        existing = {
            (row.relationship_type, row.parent_id, row.child_id): row
            for row in self.conn.execute(
                select(
                    entity_relationships.c.id,
                    entity_relationships.c.relationship_type,
                    entity_relationships.c.parent_id,
                    entity_relationships.c.child_id,
                    entity_relationships.c.details,
                ).where(entity_relationships.c.tenant == tenant, entity_relationships.c.data_source_id == source)
            )
        }
        counts = LinkCounts()
        stale = []
        for key, row in existing.items():
            if key not in wanted:
                stale.append({"edge_id": row.id})
                counts.removed[key[0]] += 1
        changed = [
            {"edge_id": existing[key].id, "new_details": details}
            for key, details in wanted.items()
            if key in existing and existing[key].details != details
        ]
        fresh = []
        for key, details in wanted.items():
            counts.total[key[0]] += 1
            if key not in existing:
                counts.created[key[0]] += 1
                fresh.append(
                    {
                        "tenant": tenant,
                        "data_source_id": source,
                        "relationship_type": key[0],
                        "parent_id": key[1],
                        "child_id": key[2],
                        "details": details,
                        "created_at": now,
                    }
                )
        by_id = (entity_relationships.c.tenant == tenant) & (entity_relationships.c.id == bindparam("edge_id"))
        if stale:
            self.conn.execute(delete(entity_relationships).where(by_id), stale)
        if changed:
            self.conn.execute(
                entity_relationships.update().where(by_id).values(details=bindparam("new_details")), changed
            )
            counts.updated = len(changed)
        bulk_insert(self.conn, entity_relationships, fresh)
        return counts
