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
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import Connection, case, func, null, select

from mspbyte_dagster.lib.adapters.microsoft365.files import DIRECTORY_FILES
from mspbyte_dagster.lib.adapters.microsoft365.roles import PRIVILEGED_TEMPLATE_IDS
from mspbyte_dagster.lib.model import M365_DATA_SOURCE
from mspbyte_dagster.lib.rules import parse_time
from mspbyte_dagster.lib.store.bulk import batched_rows
from mspbyte_dagster.lib.store.schema import data_sources, entities, entity_relationships, snapshots, tenants

USER_ODATA = "#microsoft.graph.user"
GROUP_ODATA = "#microsoft.graph.group"


@dataclass(frozen=True, slots=True)
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
    endpoint_stale_days: int = 14


@dataclass(frozen=True)
class SourceInputs:
    """Another integration's data source of the tenant, as its entities were last written from."""

    integration: str
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
    # the other integrations' data sources: their entities by type, their edges by kind (parent and child
    # external ids), and the keys of removed users (an endpoint used by a removed user is a finding)
    sources: dict[str, SourceInputs] = field(default_factory=dict)
    others: dict[str, dict[str, dict]] = field(default_factory=lambda: defaultdict(dict))
    links: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    removed_users: set[str] = field(default_factory=set)

    @property
    def tenant(self) -> str:
        return self.header.tenant

    def is_complete(self, *stems: str) -> bool:
        return all(stem in self.header.complete for stem in stems)

    @property
    def users_read(self) -> bool:
        """The tenant's users were read whole (a rule of another source about its people needs that)."""
        return self.is_complete("users")

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

    @cached_property
    def stale_users(self) -> dict[str, datetime | None]:
        """docs/rules.md "Stale": the enabled users with no sign-in in the last stale_days before capturedAt
        (never signed in: whose account is that old), each with its last sign-in (None: never). Worked out
        once: the stale and licence rules both ask it of most users (50,000 users: 90,000 times)."""
        cutoff = self.header.captured_at - timedelta(days=self.header.stale_days)
        stale: dict[str, datetime | None] = {}
        for uid, user in self.users.items():
            if user.get("accountEnabled") is not True:
                continue
            seen = last_sign_in(user)
            if seen is not None:
                if seen <= cutoff:
                    stale[uid] = seen
                continue
            created = parse_time(user.get("createdDateTime"))
            if created is not None and created <= cutoff:
                stale[uid] = None
        return stale

    def entity_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for entity_type, _external_id in self.entity_ids:
            counts[entity_type] += 1
        return dict(counts)


def last_sign_in(user: dict) -> datetime | None:
    """The latest of interactive and non-interactive sign-ins; None: never signed in."""
    activity = user.get("signInActivity") or {}
    times = [parse_time(activity.get(k)) for k in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime")]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def is_privileged(role: dict) -> bool:
    """docs/rules.md "Admin": a built-in role Microsoft labels privileged (by templateId; Graph v1.0 never
    sends isPrivileged), or isPrivileged true; where isPrivileged is absent or null, also a display name
    that says "administrator"."""
    if str(role.get("templateId") or "").lower() in PRIVILEGED_TEMPLATE_IDS or role.get("isPrivileged") is True:
        return True
    return role.get("isPrivileged") is None and "administrator" in (role.get("displayName") or "").lower()


def build_context(
    header: TenantHeader,
    rows: Iterable[EntityRow],
    edges: Iterable[Edge],
    others: Iterable[EntityRow] = (),
    sources: dict[str, SourceInputs] | None = None,
    removed: Iterable[tuple[int, str]] = (),
) -> TenantContext:
    """The context of the tenant's live entities and the edges the linkers wrote between them; `others`:
    the other integrations' live entities, `removed`: (row id, key) of removed users."""
    context = TenantContext(header, sources=sources or {})
    by_type = {
        "user": context.users,
        "group": context.groups,
        "role": context.roles,
        "policy": context.policies,
        "sku": context.skus,
    }
    external: dict[int, str] = {}
    for row in rows:
        key = (row.entity_type, row.external_id)  # one tuple for both maps (50,000 users: 3 MB less)
        context.entity_ids[key] = row.id
        context.states[key] = row.state
        external[row.id] = row.external_id
        if row.entity_type == "tenant":
            context.tenant_data = row.data
        else:
            by_type[row.entity_type][row.external_id] = row.data
    for row in others:
        if row.entity_type != "tenant":  # each source has its own; the tenant's is Microsoft 365's
            context.entity_ids[(row.entity_type, row.external_id)] = row.id
            context.states[(row.entity_type, row.external_id)] = row.state
            context.others[row.entity_type][row.external_id] = row.data
        external[row.id] = row.external_id
    for row_id, key in removed:
        context.removed_users.add(key)
        external[row_id] = key
    context.guests = {uid for uid, user in context.users.items() if user.get("userType") == "Guest"}
    context.group_users = {gid: set() for gid in context.groups}
    context.policy_users = {pid: set() for pid in context.policies}
    for_all: list[str] = []  # policies that apply to every live user but those they are not applied to
    spared: dict[str, set[str]] = defaultdict(set)
    group_users, user_groups = context.group_users, context.user_groups  # the most edges (50,000 users: 98,000)
    for kind, parent_id, child_id, details in edges:
        try:
            parent, uid = external[parent_id], external[child_id]
        except KeyError:
            continue  # an edge of a source whose entities are not read here
        if kind == "member_of":
            group_users[parent].add(uid)
            user_groups[uid].add(parent)
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
        elif kind == "applies_to_all":
            for_all.append(parent)
        elif kind == "does_not_apply_to":
            spared[parent].add(uid)
        elif kind == "has_license" and uid in context.users:
            context.user_skus[uid].add(parent)
        else:  # the other integrations' edges
            context.links[kind].append((parent, uid))
    _apply_to_all(context, for_all, spared)
    for rid, role in context.roles.items():
        if is_privileged(role):
            context.admins |= context.role_holders.get(rid, set()) | context.eligible_holders.get(rid, set())
    return context


def _apply_to_all(context: TenantContext, for_all: list[str], spared: dict[str, set[str]]) -> None:
    """The policies for all users but those spared, both ways: each user's share is worked out once, not
    added policy by policy (seven such policies of 50,000 users were 200,000 additions)."""
    spared_by: dict[str, set[str]] = defaultdict(set)
    for pid in for_all:
        context.policy_users[pid] = context.users.keys() - spared[pid]
        for uid in spared[pid]:
            spared_by[uid].add(pid)
    everyone = frozenset(for_all)
    for uid in context.users if for_all else ():
        context.user_policies[uid] |= everyone - spared_by[uid] if uid in spared_by else everyone


def _entities_snapshot(tenant: str):
    """A data source's snapshot its entities came from (the current one until entities have run once)."""
    newest = func.coalesce(data_sources.c.processed_snapshot_id, data_sources.c.current_snapshot_id)
    return (snapshots.c.id == newest) & (snapshots.c.tenant == tenant)


def header_query(tenant: str):
    return (
        select(
            tenants.c.tenant,
            tenants.c.name,
            tenants.c.stale_days,
            tenants.c.unused_license_threshold,
            tenants.c.endpoint_stale_days,
            data_sources.c.id.label("data_source_id"),
            snapshots.c.id.label("snapshot_id"),
            snapshots.c.captured_at,
            snapshots.c.counts,
            snapshots.c.sources,
        )
        .join(
            data_sources, (data_sources.c.tenant == tenants.c.tenant) & (data_sources.c.source_id == M365_DATA_SOURCE)
        )
        .join(snapshots, _entities_snapshot(tenant))
        .where(tenants.c.tenant == tenant)
    )


def tenant_header(row) -> TenantHeader:
    """Inputs read whole in the current snapshot: present, not marked incomplete."""
    sources = row.sources or {}
    complete = read_whole(row)
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
        endpoint_stale_days=row.endpoint_stale_days,
    )


def live_entities_query(tenant: str, data_source_id: int | list[int]):
    """The live entities of one data source, or of several (a list of ids)."""
    c = entities.c
    of_source = (
        c.data_source_id.in_(data_source_id) if isinstance(data_source_id, list) else c.data_source_id == data_source_id
    )
    return select(c.id, c.entity_type, c.external_id, c.state, c.data).where(
        c.tenant == tenant, of_source, c.deleted_at.is_(None)
    )


def removed_users_query(tenant: str, data_source_id: int):
    """(row id, key) of the users a sync removed: an edge may still name one."""
    c = entities.c
    return select(c.id, c.external_id).where(
        c.tenant == tenant, c.data_source_id == data_source_id, c.entity_type == "user", c.deleted_at.is_not(None)
    )


def edges_query(tenant: str, data_source_id: int | None = None):
    """The edges of one data source, or (None) of every data source of the tenant; with their details only
    where `build_context` reads them (a role's groups), so the membership edges' JSON is not parsed for
    nothing (19,000 values at 10,000 users)."""
    c = entity_relationships.c
    details = case((c.relationship_type == "assigned_role", c.details), else_=null()).label("details")
    query = select(c.relationship_type, c.parent_id, c.child_id, details).where(c.tenant == tenant)
    return query if data_source_id is None else query.where(c.data_source_id == data_source_id)


def other_sources_query(tenant: str):
    """The tenant's data sources of other integrations, with the snapshot their entities came from."""
    return (
        select(
            data_sources.c.id,
            data_sources.c.integration,
            snapshots.c.captured_at,
            snapshots.c.counts,
            snapshots.c.sources,
        )
        .join(snapshots, _entities_snapshot(tenant))
        .where(data_sources.c.tenant == tenant, data_sources.c.source_id != M365_DATA_SOURCE)
    )


def read_whole(row) -> set[str]:
    """The files of a snapshot row that were present and not marked incomplete."""
    sources = row.sources or {}
    return {stem for stem in row.counts if sources.get(stem, {}).get("complete", True)}


def source_inputs(row) -> SourceInputs:
    return SourceInputs(row.integration, row.captured_at, frozenset(read_whole(row)))


def live_entities(conn: Connection, tenant: str, data_source_id: int | list[int]) -> list[EntityRow]:
    """The live entities of one data source, or of several, whole: the linker and the loader read them."""
    return [EntityRow(*row) for row in batched_rows(conn.execute(live_entities_query(tenant, data_source_id)))]


@dataclass
class OtherSources:
    """The tenant's data sources of other integrations, as a context reads them (the same on both paths:
    they have no legacy pattern)."""

    ids: list[int] = field(default_factory=list)
    sources: dict[str, SourceInputs] = field(default_factory=dict)
    rows: list[EntityRow] = field(default_factory=list)
    removed: list = field(default_factory=list)


def read_other_sources(conn: Connection, tenant: str, header: TenantHeader) -> OtherSources:
    """One read when the tenant has none; with some, their live entities and the removed users' keys too."""
    other = list(conn.execute(other_sources_query(tenant)))
    if not other:
        return OtherSources()
    ids = [source.id for source in other]
    return OtherSources(
        ids,
        {source.integration: source_inputs(source) for source in other},
        live_entities(conn, tenant, ids),
        list(conn.execute(removed_users_query(tenant, header.data_source_id))),
    )


class DataContextLoader:
    """Loads a TenantContext in a constant number of queries whatever the tenant's size: the header,
    the other data sources, the live entities, the edges; with other sources, their entities and the
    keys of removed users too (six at most)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def load(self, tenant: str, rows: list[EntityRow] | None = None) -> TenantContext:
        """`rows`: the tenant's live Microsoft 365 entities, when this transaction has read them since it last
        wrote any (the linker's)."""
        header = tenant_header(self.conn.execute(header_query(tenant)).one())
        other = read_other_sources(self.conn, tenant, header)
        if rows is None:
            rows = live_entities(self.conn, tenant, header.data_source_id)
        edges = batched_rows(self.conn.execute(edges_query(tenant)))
        return build_context(header, rows, edges, other.rows, other.sources, other.removed)
