"""TenantContext: everything one tenant's analysis needs, with O(1) lookups both ways.

It is read, not derived: the live entities, and the relationships the linker
wrote between them (memberships, role holders, eligibilities, the policies that
apply, licences). `DataContextLoader` reads them in a constant number of
queries whatever the tenant's size; the legacy loader (lib/legacy/) one query
per entity. Both hand their rows to `build_context`, so the two paths can only
differ in how they read, never in what they compute.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from mspbyte_dagster.lib.adapters.microsoft365.files import DIRECTORY_FILES
from mspbyte_dagster.lib.adapters.microsoft365.roles import PRIVILEGED_TEMPLATE_IDS
from mspbyte_dagster.lib.model import M365_DATA_SOURCE
from mspbyte_dagster.lib.store.schema import data_sources, entities, entity_relationships, snapshots, tenants

USER_ODATA = "#microsoft.graph.user"
GROUP_ODATA = "#microsoft.graph.group"


@dataclass(frozen=True)
class EntityRow:
    id: int
    entity_type: str
    external_id: str
    state: str
    data: dict


Edge = tuple[str, int, int, dict | None]  # (relationship type, parent entity id, child entity id, details)


@dataclass(frozen=True)
class TenantHeader:
    """The tenant, its thresholds, its data source and which inputs the current snapshot read whole."""

    tenant: str
    name: str
    stale_days: int
    unused_license_threshold: int
    data_source_id: int
    snapshot_id: int
    captured_at: datetime
    complete: frozenset[str]


@dataclass
class TenantContext:
    header: TenantHeader
    entity_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    states: dict[tuple[str, str], str] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)
    roles: dict[str, dict] = field(default_factory=dict)
    policies: dict[str, dict] = field(default_factory=dict)
    skus: dict[str, dict] = field(default_factory=dict)
    tenant_data: dict = field(default_factory=dict)
    # derived maps
    group_users: dict[str, set[str]] = field(default_factory=dict)  # transitive
    user_groups: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    role_holders: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # role id -> users, active
    eligible_holders: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # PIM: may activate
    user_roles: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    role_via_groups: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    user_skus: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    policy_users: dict[str, set[str]] = field(default_factory=dict)  # enabled policies that apply
    user_policies: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    admins: set[str] = field(default_factory=set)
    guests: set[str] = field(default_factory=set)

    @property
    def tenant(self) -> str:
        return self.header.tenant

    def is_complete(self, *stems: str) -> bool:
        return all(stem in self.header.complete for stem in stems)

    @property
    def directory_read(self) -> bool:
        return self.is_complete(*DIRECTORY_FILES)

    @property
    def security_defaults(self) -> bool:
        return bool((self.tenant_data.get("securityDefaults") or {}).get("isEnabled"))

    @property
    def sign_in_read(self) -> bool:
        """Sign-in data exists: not refused by Graph, and some user carries it (the tenant has P1/P2)."""
        return "signInActivity" in self.header.complete and any(
            user.get("signInActivity") is not None for user in self.users.values()
        )

    def entity_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for entity_type, _external_id in self.entity_ids:
            counts[entity_type] += 1
        return dict(counts)


def is_privileged(role: dict) -> bool:
    """docs/rules.md "Admin": a built-in role Microsoft labels privileged (by templateId; Graph v1.0 never
    sends isPrivileged), or isPrivileged true; where isPrivileged is absent or null, also a display name
    that says "administrator"."""
    if str(role.get("templateId") or "").lower() in PRIVILEGED_TEMPLATE_IDS or role.get("isPrivileged") is True:
        return True
    return role.get("isPrivileged") is None and "administrator" in (role.get("displayName") or "").lower()


def build_context(header: TenantHeader, rows: Iterable[EntityRow], edges: Iterable[Edge]) -> TenantContext:
    """The context of the tenant's live entities and the edges the linker wrote between them."""
    context = TenantContext(header)
    by_type = {
        "user": context.users,
        "group": context.groups,
        "role": context.roles,
        "policy": context.policies,
        "sku": context.skus,
    }
    external: dict[int, str] = {}
    for row in rows:
        context.entity_ids[(row.entity_type, row.external_id)] = row.id
        context.states[(row.entity_type, row.external_id)] = row.state
        external[row.id] = row.external_id
        if row.entity_type == "tenant":
            context.tenant_data = row.data
        else:
            by_type[row.entity_type][row.external_id] = row.data
    context.guests = {uid for uid, user in context.users.items() if user.get("userType") == "Guest"}
    context.group_users = {gid: set() for gid in context.groups}
    context.policy_users = {pid: set() for pid in context.policies}
    for kind, parent_id, child_id, details in edges:
        parent, uid = external[parent_id], external[child_id]
        if kind == "member_of":
            context.group_users[parent].add(uid)
            context.user_groups[uid].add(parent)
        elif kind == "assigned_role":
            context.role_holders[parent].add(uid)
            context.user_roles[uid].add(parent)
            for via in details["via_groups"]:
                context.role_via_groups[(parent, uid)].add(via)
        elif kind == "eligible_role":
            context.eligible_holders[parent].add(uid)
        elif kind == "applies_to":
            context.policy_users[parent].add(uid)
            context.user_policies[uid].add(parent)
        elif kind == "has_license":
            context.user_skus[uid].add(parent)
    for rid, role in context.roles.items():
        if is_privileged(role):
            context.admins |= context.role_holders.get(rid, set()) | context.eligible_holders.get(rid, set())
    return context


def header_query(tenant: str):
    return (
        select(
            tenants.c.tenant,
            tenants.c.name,
            tenants.c.stale_days,
            tenants.c.unused_license_threshold,
            data_sources.c.id.label("data_source_id"),
            snapshots.c.id.label("snapshot_id"),
            snapshots.c.captured_at,
            snapshots.c.counts,
            snapshots.c.sources,
        )
        .join(
            data_sources, (data_sources.c.tenant == tenants.c.tenant) & (data_sources.c.source_id == M365_DATA_SOURCE)
        )
        # the snapshot the entities came from (the current one until entities have run once)
        .join(
            snapshots,
            (snapshots.c.id == func.coalesce(data_sources.c.processed_snapshot_id, data_sources.c.current_snapshot_id))
            & (snapshots.c.tenant == tenant),
        )
        .where(tenants.c.tenant == tenant)
    )


def tenant_header(row) -> TenantHeader:
    """Inputs read whole in the current snapshot: present, not marked incomplete."""
    sources = row.sources or {}
    complete = {stem for stem in row.counts if sources.get(stem, {}).get("complete", True)}
    if "users" in complete and sources.get("signInActivity", {}).get("complete", True):
        complete.add("signInActivity")
    return TenantHeader(
        tenant=row.tenant,
        name=row.name,
        stale_days=row.stale_days,
        unused_license_threshold=row.unused_license_threshold,
        data_source_id=row.data_source_id,
        snapshot_id=row.snapshot_id,
        captured_at=row.captured_at,
        complete=frozenset(complete),
    )


def live_entities_query(tenant: str, data_source_id: int):
    return select(
        entities.c.id, entities.c.entity_type, entities.c.external_id, entities.c.state, entities.c.data
    ).where(
        entities.c.tenant == tenant,
        entities.c.data_source_id == data_source_id,
        entities.c.deleted_at.is_(None),
    )


def edges_query(tenant: str, data_source_id: int):
    c = entity_relationships.c
    return select(c.relationship_type, c.parent_id, c.child_id, c.details).where(
        c.tenant == tenant, c.data_source_id == data_source_id
    )


class DataContextLoader:
    """Loads a TenantContext in three queries (header, live entities, edges), whatever the tenant's size."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def load(self, tenant: str) -> TenantContext:
        header = tenant_header(self.conn.execute(header_query(tenant)).one())
        rows = [
            EntityRow(r.id, r.entity_type, r.external_id, r.state, r.data)
            for r in self.conn.execute(live_entities_query(tenant, header.data_source_id))
        ]
        return build_context(header, rows, self.conn.execute(edges_query(tenant, header.data_source_id)))
