"""TenantContext: the legacy and the new path read the same tenant, and a kept context is reused only when current."""

import copy
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mspbyte_dagster.lib.adapters.microsoft365.linking import RELATIONSHIP_TYPES, _transitive_users
from mspbyte_dagster.lib.context import DataContextLoader
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FeatureFlagManager, RuntimeFlag
from mspbyte_dagster.lib.legacy import LegacyContextLoader
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import findings, pipeline_ledger
from mspbyte_dagster.lib.store.tenants import set_threshold
from mspbyte_dagster_tests.conftest import _empty_postgres
from mspbyte_dagster_tests.graph_builders import (
    assignment,
    directory,
    edges,
    licensed,
    policy,
    role,
    sku,
    users_in,
)
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, user
from mspbyte_dev.synthetic import write_snapshots

LINK = ("m365_snapshot", "entities", "relationships", "tenant_context")
LEGACY = PassOptions(flags=FeatureFlagManager(FLAG_DEFAULTS, runtime={"batch_loading": RuntimeFlag(rollout=0)}))
CONTEXT_FIELDS = (
    "users",
    "groups",
    "roles",
    "policies",
    "skus",
    "group_users",
    "user_groups",
    "role_holders",
    "user_roles",
    "role_via_groups",
    "user_skus",
    "policy_users",
    "user_policies",
    "admins",
    "guests",
    "entity_ids",
    "states",
    "tenant_data",
    "header",
)
SIZES = (10, 300)


@pytest.fixture(scope="module")
def synthetic_tenants(tmp_path_factory):
    """Four synthetic tenants (every variant) per size, generated once: {users: folders}."""
    return {
        users: write_snapshots(tmp_path_factory.mktemp(f"synthetic-{users}"), tenants=4, users=users, seed=users)
        for users in SIZES
    }


@pytest.fixture
def engines(request, engine, database_url, tmp_path):
    """Two fresh app databases of the fixture's kind: (for the new path, for the legacy path)."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "legacy.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        other = f"sqlite:///{path}"
    else:
        other = request.getfixturevalue("second_postgres_url")
        _empty_postgres(other)
    yield engine, engine_for(other)
    if other.startswith("sqlite"):
        engine_for(other).dispose()


def import_and_run(engine, store, folders, stages, options=None) -> list[str]:
    """Import the folders and run `stages` for each tenant; returns the tenant keys."""
    keys = [imported.tenant for imported in import_folders(engine, folders)]
    for key in keys:
        result = run_tenant_pass(engine, key, stages, options or PassOptions())
        assert result.status == "succeeded", (key, result.reason)
    return keys


def fields(context) -> dict:
    return {name: getattr(context, name) for name in CONTEXT_FIELDS}


@pytest.mark.parametrize("users", SIZES)
@pytest.mark.slow
def test_legacy_and_new_paths_give_the_same_context_and_edges(engines, tmp_path, synthetic_tenants, users):
    """Each path links four synthetic tenants (every variant) in a database of its own."""
    new_engine, legacy_engine = engines
    keys = import_and_run(new_engine, tmp_path / "new", synthetic_tenants[users], LINK)
    import_and_run(legacy_engine, tmp_path / "legacy", synthetic_tenants[users], LINK, LEGACY)
    with new_engine.connect() as conn:
        contexts = [(DataContextLoader(conn).load(key), LegacyContextLoader(conn).load(key)) for key in keys]
    for new, legacy in contexts:
        assert fields(new) == fields(legacy)
        assert len(new.users) == users and new.admins and new.user_groups and new.user_skus
    assert any(new.guests for new, _ in contexts) and any(any(new.policy_users.values()) for new, _ in contexts)
    kinds = set()
    for key in keys:
        written = edges(new_engine, key)
        assert edges(legacy_engine, key) == written
        kinds |= {kind for kind, _, _ in written}
    assert kinds == set(RELATIONSHIP_TYPES)


def linked_every_way() -> dict[str, object]:
    return directory(
        [licensed("u0", "s1"), licensed("u1", "s2")],
        groups={"g1": users_in("u0"), "g2": users_in("u1")},
        roles=[role("r1"), role("r2")],
        assignments=[assignment("u0", "r1"), assignment("u1", "r2")],
        policies=[policy("p1", includeUsers=["u0"]), policy("p2", includeUsers=["All"])],
        skus=[sku("s1"), sku("s2")],
    )


def _drop_group(files):
    files["groups"] = [g for g in files["groups"] if g["id"] != "g1"]
    del files["group_members"]["g1"]


def _drop_role(files):
    files["role_definitions"] = [r for r in files["role_definitions"] if r["id"] != "r1"]
    files["role_assignments"] = [a for a in files["role_assignments"] if a["roleDefinitionId"] != "r1"]


def _drop_policy(files):
    files["conditional_access_policies"] = [p for p in files["conditional_access_policies"] if p["id"] != "p1"]


def _drop_sku(files):
    files["subscribed_skus"] = [s for s in files["subscribed_skus"] if s["skuId"] != "s1"]
    files["users"][0]["assignedLicenses"] = []


VANISHING = {"g1": _drop_group, "r1": _drop_role, "p1": _drop_policy, "s1": _drop_sku}


@pytest.mark.parametrize("parent", VANISHING)
def test_both_linkers_remove_the_edges_of_a_group_role_policy_or_sku_that_disappears(engines, tmp_path, parent):
    """REFERENCE k3 (edges never removed) is not to be copied by either path."""
    later = linked_every_way()
    VANISHING[parent](later)
    new_engine, legacy_engine = engines
    written = {}
    for path, engine, options in (("new", new_engine, PassOptions()), ("legacy", legacy_engine, LEGACY)):
        import_files(engine, tmp_path / path, linked_every_way())
        assert run_tenant_pass(engine, "contoso", LINK, options).status == "succeeded"
        import_files(engine, tmp_path / path, later)
        assert run_tenant_pass(engine, "contoso", LINK, options).status == "succeeded"
        written[path] = edges(engine)
        assert not [edge for edge in written[path] if edge[1] == parent], path
    assert written["legacy"] == written["new"]


def ledger_modules(engine, tenant="contoso") -> dict[str, int]:
    """Statements per module of the tenant's latest pass."""
    with engine.connect() as conn:
        row = conn.execute(
            select(pipeline_ledger.c.details)
            .where(pipeline_ledger.c.tenant == tenant)
            .order_by(pipeline_ledger.c.id.desc())
        ).first()
    return row.details["query_stats"]["by_module"]


def test_a_findings_run_after_a_full_pass_loads_the_context_from_the_database_alone(engine, tmp_path):
    import_files(engine, tmp_path / "store", minimal_files())
    full = run_tenant_pass(engine, "contoso", STAGES, PassOptions())
    subset = run_tenant_pass(engine, "contoso", ("findings",), PassOptions())
    assert subset.status == "succeeded", subset.reason
    assert ledger_modules(engine)["DataContextLoader"] <= 7  # the context budget, nothing kept on disk
    assert subset.stages["findings"]["by_alert_type"] == full.stages["findings"]["by_alert_type"] != {}
    assert not list(tmp_path.rglob("*.pickle"))


def test_a_context_kept_from_an_older_snapshot_is_not_used(engine, tmp_path):
    options = PassOptions()
    files = minimal_files()
    import_files(engine, tmp_path / "store", files)
    assert run_tenant_pass(engine, "contoso", STAGES, options).status == "succeeded"
    newer = copy.deepcopy(files)
    newer["users"].append(user("leaver", enabled=False, assignedLicenses=[{"skuId": "s1", "disabledPlans": []}]))
    import_files(engine, tmp_path / "store", newer)
    # findings reads the context of the entities and edges now stored, not one kept from the first pass
    assert run_tenant_pass(engine, "contoso", ("entities", "relationships"), options).status == "succeeded"
    subset = run_tenant_pass(engine, "contoso", ("findings",), options)
    assert subset.status == "succeeded", subset.reason
    assert ledger_modules(engine)["DataContextLoader"] > 0
    with engine.connect() as conn:
        waste = conn.execute(select(findings.c.entity_id).where(findings.c.alert_type == "license_waste")).scalars()
        assert set(waste) == {"leaver"}


def test_a_context_kept_before_a_threshold_changed_is_not_used(engine, tmp_path):
    """`mspbyte thresholds set`: "the tenant's next pass uses it", a findings-only pass included."""
    options = PassOptions()
    import_files(engine, tmp_path / "store", minimal_files())  # s1: 5 bought, 1 assigned
    assert run_tenant_pass(engine, "contoso", STAGES, options).stages["findings"]["by_alert_type"]["license_unused"]
    with engine.begin() as conn:
        set_threshold(conn, "contoso", "unused_license_threshold", 10)
    subset = run_tenant_pass(engine, "contoso", ("findings",), options)
    assert subset.status == "succeeded", subset.reason
    assert "license_unused" not in subset.stages["findings"]["by_alert_type"]


def test_a_later_stage_alone_describes_the_snapshot_its_entities_came_from(engine, tmp_path):
    """A newer snapshot not yet processed does not change what `findings` alone believes was read."""
    first = import_files(engine, tmp_path / "store", minimal_files(), name="first")
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    newer = minimal_files()
    del newer["conditional_access_policies"]
    import_files(engine, tmp_path / "store", newer, name="newer")
    alone = run_tenant_pass(engine, "contoso", ("findings",), PassOptions())
    assert "mfa_not_enforced" not in alone.stages["findings"]["not_evaluated"]
    with engine.connect() as conn:
        assert DataContextLoader(conn).load("contoso").header.snapshot_id == first.snapshot_id
    processed = run_tenant_pass(engine, "contoso", ("entities", "findings"), PassOptions())
    assert "mfa_not_enforced" in processed.stages["findings"]["not_evaluated"]


def _naive_closure(groups: dict, users: dict) -> dict[str, set[str]]:
    """The definition, walked from every group: slow, obviously right."""
    result = {}
    for gid in groups:
        seen, todo, found = {gid}, [gid], set()
        while todo:
            for member in groups[todo.pop()].get("members") or []:
                if member["@odata.type"] == "#microsoft.graph.user" and member["id"] in users:
                    found.add(member["id"])
                elif (
                    member["@odata.type"] == "#microsoft.graph.group"
                    and member["id"] in groups
                    and member["id"] not in seen
                ):
                    seen.add(member["id"])
                    todo.append(member["id"])
        result[gid] = found
    return result


def _groups(edges: list[tuple[int, int]], user_edges: list[tuple[int, int]], size: int) -> dict:
    groups = {f"g{n}": {"members": []} for n in range(size)}
    for parent, child in edges:
        groups[f"g{parent}"]["members"].append({"@odata.type": "#microsoft.graph.group", "id": f"g{child}"})
    for parent, user_number in user_edges:
        groups[f"g{parent}"]["members"].append({"@odata.type": "#microsoft.graph.user", "id": f"u{user_number}"})
    return groups


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 12),
    edges=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=30),
    user_edges=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 6)), max_size=20),
)
def test_membership_closure_is_the_definition_on_any_nesting_cycles_included(size, edges, user_edges):
    edges = [(a % size, b % size) for a, b in edges]
    user_edges = [(a % size, u) for a, u in user_edges]
    groups, users = _groups(edges, user_edges, size), {f"u{n}": {} for n in range(5)}  # u5, u6: not live
    assert _transitive_users(groups, users) == _naive_closure(groups, users)


def test_a_20000_deep_chain_of_nested_groups_is_closed_whole():
    """Found by attack: a 30-user tenant with such a chain took 40 s a pass (quadratic walks)."""
    depth = 20_000
    groups = _groups([(n, n + 1) for n in range(depth - 1)] + [(depth - 1, 0)], [(depth - 1, 1), (0, 2)], depth)
    closure = _transitive_users(groups, {"u1": {}, "u2": {}})
    assert closure["g0"] == closure["g19999"] == closure["g12345"] == {"u1", "u2"}  # one cycle: one set
