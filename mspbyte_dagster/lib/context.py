"""TenantContext: everything one tenant's analysis needs, with O(1) lookups both ways.

`DataContextLoader` fills it in a constant number of queries whatever the
tenant's size; the legacy loader (lib/legacy/) fills the same structure one
query per entity. Both hand their rows to `build_context`, so the two paths can
only differ in how they read, never in what they compute.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from mspbyte_dagster.lib.adapters.microsoft365.roles import PRIVILEGED_TEMPLATE_IDS
from mspbyte_dagster.lib.model import M365_DATA_SOURCE
from mspbyte_dagster.lib.store.schema import data_sources, entities, snapshots, tenants

USER_ODATA = "#microsoft.graph.user"
GROUP_ODATA = "#microsoft.graph.group"
DIRECTORY_FILES = ("users", "groups", "group_members", "role_definitions", "role_assignments", "role_eligibilities")


@dataclass(frozen=True)
class EntityRow:
    id: int
    entity_type: str
    external_id: str
    state: str
    data: dict


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
    sku_holders: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
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


def _transitive_users(groups: dict[str, dict], users: dict[str, dict]) -> dict[str, set[str]]:
    """Every live user reachable from each group through nested groups, in time near-linear in the
    groups, memberships and result (a 20,000-deep chain included): groups in a cycle share one set,
    and each set is built once from its children's (strongly connected components, children first).

    A member that is no live user (deleted between two Graph reads, or users not read) is left out."""
    direct_users = {gid: set() for gid in groups}
    child_groups = {gid: [] for gid in groups}
    for gid, group in groups.items():
        for member in group.get("members") or []:
            if member.get("@odata.type") == USER_ODATA and member["id"] in users:
                direct_users[gid].add(member["id"])
            elif member.get("@odata.type") == GROUP_ODATA and member["id"] in groups:
                child_groups[gid].append(member["id"])
    component_of, components = _components(child_groups)
    reached: list[set[str]] = []
    for number, members in enumerate(components):  # a component comes after every one it reaches
        found: set[str] = set()
        for gid in members:
            found |= direct_users[gid]
            for child in child_groups[gid]:
                if component_of[child] != number:
                    found |= reached[component_of[child]]
        reached.append(found)
    return {gid: reached[component_of[gid]] for gid in groups}


def _components(children: dict[str, list[str]]) -> tuple[dict[str, int], list[list[str]]]:
    """Tarjan's strongly connected components, without recursion (nesting may be deep): each node's
    component number, and the components in the order Tarjan finds them (reached ones first)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    component_of: dict[str, int] = {}
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in children:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(children[root]))]
        while work:
            node, pending = work[-1]
            for child in pending:
                if child not in index:
                    visit(child)
                    work.append((child, iter(children[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component_of[top] = len(components)
                        members.append(top)
                        if top == node:
                            break
                    components.append(members)
    return component_of, components


def _principal_users(context: TenantContext, principal: str) -> tuple[set[str], str | None]:
    """The users an assignment to `principal` reaches, and the group it goes through (service principals,
    devices and unknown ids reach no user)."""
    if principal in context.users:
        return {principal}, None
    if principal in context.groups:
        return context.group_users[principal], principal
    return set(), None


def _users_in(context: TenantContext, group_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for gid in group_ids or []:
        found |= context.group_users.get(gid, set())
    return found


def _users_holding(context: TenantContext, template_ids: list[str], by_template: dict[str, list[str]]) -> set[str]:
    """Active holders only: Conditional Access targets a role's eligible users once they activate it."""
    found: set[str] = set()
    for template in template_ids or []:
        for role_id in by_template.get(template, []):
            found |= context.role_holders.get(role_id, set())
    return found


def _targeted(context: TenantContext, targets: dict, side: str, by_template: dict[str, list[str]]) -> set[str]:
    """Users named by one side (include/exclude) of a policy's user conditions."""
    users = targets.get(f"{side}Users") or []
    chosen: set[str] = set(context.users) if "All" in users else {u for u in users if u in context.users}
    if "GuestsOrExternalUsers" in users:
        chosen |= context.guests
    guest_types = (targets.get(f"{side}GuestsOrExternalUsers") or {}).get("guestOrExternalUserTypes") or ""
    if {kind.strip() for kind in guest_types.split(",")} - {"", "none"}:  # any type listed names every guest
        chosen |= context.guests
    chosen |= _users_in(context, targets.get(f"{side}Groups"))
    chosen |= _users_holding(context, targets.get(f"{side}Roles"), by_template)
    return chosen


def applicable_users(context: TenantContext, policy: dict, by_template: dict[str, list[str]]) -> set[str]:
    """RULES "Which policies apply": enabled, included, not excluded (exclusion wins)."""
    if policy.get("state") != "enabled":
        return set()
    targets = (policy.get("conditions") or {}).get("users") or {}
    return _targeted(context, targets, "include", by_template) - _targeted(context, targets, "exclude", by_template)


def build_context(header: TenantHeader, rows: list[EntityRow]) -> TenantContext:
    context = TenantContext(header)
    by_type = {
        "user": context.users,
        "group": context.groups,
        "role": context.roles,
        "policy": context.policies,
        "sku": context.skus,
    }
    for row in rows:
        context.entity_ids[(row.entity_type, row.external_id)] = row.id
        context.states[(row.entity_type, row.external_id)] = row.state
        if row.entity_type == "tenant":
            context.tenant_data = row.data
        else:
            by_type[row.entity_type][row.external_id] = row.data
    context.guests = {uid for uid, user in context.users.items() if user.get("userType") == "Guest"}
    context.group_users = _transitive_users(context.groups, context.users)
    for gid, users in context.group_users.items():
        for uid in users:
            context.user_groups[uid].add(gid)
    for role_id, role in context.roles.items():
        for assignment in role.get("assignments") or []:
            holders, via = _principal_users(context, assignment["principalId"])
            for uid in holders:
                context.role_holders[role_id].add(uid)
                context.user_roles[uid].add(role_id)
                if via:
                    context.role_via_groups[(role_id, uid)].add(via)
        for eligibility in role.get("eligibilities") or []:
            context.eligible_holders[role_id] |= _principal_users(context, eligibility["principalId"])[0]
    context.admins = set()
    for rid, role in context.roles.items():
        if is_privileged(role):
            context.admins |= context.role_holders.get(rid, set()) | context.eligible_holders.get(rid, set())
    for uid, user in context.users.items():
        for licence in user.get("assignedLicenses") or []:
            context.user_skus[uid].add(licence["skuId"])
            context.sku_holders[licence["skuId"]].add(uid)
    by_template: dict[str, list[str]] = defaultdict(list)
    for rid, role in context.roles.items():
        by_template[role.get("templateId") or rid].append(rid)
    for pid, policy in context.policies.items():
        applies = applicable_users(context, policy, by_template)
        context.policy_users[pid] = applies
        for uid in applies:
            context.user_policies[uid].add(pid)
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


class DataContextLoader:
    """Loads a TenantContext in two queries (header, live entities), whatever the tenant's size."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def load(self, tenant: str) -> TenantContext:
        header = tenant_header(self.conn.execute(header_query(tenant)).one())
        rows = [
            EntityRow(r.id, r.entity_type, r.external_id, r.state, r.data)
            for r in self.conn.execute(live_entities_query(tenant, header.data_source_id))
        ]
        return build_context(header, rows)
