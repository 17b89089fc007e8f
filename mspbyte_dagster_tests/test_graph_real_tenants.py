"""What Graph v1.0 does that a first local Graph never showed (issue 14), each through the real adapter
against the local Graph answering as real tenants do."""

from __future__ import annotations

import json
import ssl

import httpx
import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphAuthError, GraphCredentials, TenantTokens
from mspbyte_dagster.lib.adapters.microsoft365.client import GraphError, ReportsPace, RetryPolicy
from mspbyte_dagster.lib.adapters.microsoft365.linking import Microsoft365Linker
from mspbyte_dagster.lib.context import DataContextLoader, TenantContext
from mspbyte_dagster.lib.entities import process_entities
from mspbyte_dagster.lib.graph_sync import refresh_graph_snapshot
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import entities
from mspbyte_dagster_tests.graph_fixtures import (
    CLIENT_ID,
    QUICK,
    SECRET,
    connect,
    folder_files,
    read,
    register_graph_tenant,
    synthetic_graph,
    use_graph,
)
from mspbyte_dagster_tests.snapshots import mspbyte
from mspbyte_dev.fake_graph import PERMISSIONS, FakeGraph
from mspbyte_dev.synthetic import GLOBAL_ADMINISTRATOR, GLOBAL_READER, write_snapshots

graph = pytest.fixture(synthetic_graph, name="graph")

TENANT = "synth-3-000"  # the full-setup variant: P1, every file
ELIGIBLE_USER = 6  # the archetype eligible (PIM) for Global Administrator, holding no active role


def refresh(engine, fake: FakeGraph, key: str = TENANT) -> None:
    with connect(fake) as connection:
        refresh_graph_snapshot(engine, key, connect=lambda: connection)


def process(engine, key: str = TENANT) -> TenantContext:
    """The pass's stages up to the context on the current snapshot (entities, then their relationships),
    and the context they give."""
    with engine.begin() as conn:
        current = tenant_store.current_snapshot(conn, key)
        snapshot = load_snapshot(conn, key, current.snapshot_id)
        process_entities(conn, key, current.data_source_id, snapshot, current.snapshot_id)
        Microsoft365Linker(conn).link(key, current.data_source_id)
        return DataContextLoader(conn).load(key)


def group_named(files: dict, prefix: str) -> str:
    return next(g["id"] for g in files["groups"] if g["displayName"].startswith(prefix))


def stored_members(engine, group_id: str) -> list | None:
    with engine.connect() as conn:
        data = conn.execute(
            select(entities.c.data).where(entities.c.entity_type == "group", entities.c.external_id == group_id)
        ).scalar_one()
    return data.get("members")


# --- 2. PIM eligibility -----------------------------------------------------------------------------


def test_eligible_admins_are_read_and_are_admins_but_not_targeted_by_role_policies(engine, graph, synth_dir):
    original = folder_files(synth_dir / TENANT)
    result, _ = read(graph)
    assert result.files["role_eligibilities"] == original["role_eligibilities"]
    assert "role_eligibilities" not in result.sources

    register_graph_tenant(engine, synth_dir / TENANT)
    refresh(engine, graph)
    context = process(engine)
    eligible = original["users"][ELIGIBLE_USER]["id"]
    assert eligible in context.admins
    assert not context.user_roles.get(eligible)  # holds nothing active
    admins_policy = next(p for p in original["conditional_access_policies"] if p["conditions"]["users"]["includeRoles"])
    assert GLOBAL_ADMINISTRATOR in admins_policy["conditions"]["users"]["includeRoles"]
    assert eligible not in context.policy_users[admins_policy["id"]]  # CA targets active holders only


def test_a_tenant_without_p2_has_no_pim_recorded_as_a_note_not_a_gap(graph):
    graph.remove_p2(TENANT)
    result, _ = read(graph)
    assert result.files["role_eligibilities"] == []
    source = result.sources["role_eligibilities"]
    assert (
        source["complete"] is True and "no PIM" in source["reason"] and "AadPremiumLicenseRequired" in source["reason"]
    )


# --- 3. $top with signInActivity --------------------------------------------------------------------


def test_users_with_sign_in_activity_are_read_120_a_page_and_more_is_refused(tmp_path):
    write_snapshots(tmp_path, tenants=1, users=300, seed=11)
    with FakeGraph(tmp_path, client_secret=SECRET) as fake:
        key = next(iter(fake.tenants()))
        with connect(fake) as connection:
            client = connection.tenant(key, fake.tenants()[key])
            with pytest.raises(GraphError, match=r"HTTP 400.*between 1 and 120"):
                list(client.collection("/users", {"$select": "id,signInActivity", "$top": "999"}))
        refused = fake.requests.count("GET /users")
        result, client = read(fake, key)
        users_pages = fake.requests.count("GET /users") - refused
    assert len(result.files["users"]) == 300 and "signInActivity" not in result.sources
    assert users_pages == 3  # 120 + 120 + 60


def test_top_is_refused_where_graph_takes_none(graph):
    with connect(graph) as connection:
        client = connection.tenant(TENANT, graph.tenants()[TENANT])
        with pytest.raises(GraphError, match=r"HTTP 400.*\$top"):
            list(client.collection("/subscribedSkus", {"$top": "5"}))


# --- 4 and 7. groups deleted, refused or hidden -------------------------------------------------------


def test_a_group_deleted_while_reading_is_left_out_and_fails_nothing(graph, synth_dir):
    original = folder_files(synth_dir / TENANT)
    deleted = group_named(original, "Newsletter")
    graph.deleted_groups.add(deleted)
    result, _ = read(graph)
    assert deleted not in result.files["group_members"]
    assert "group_members" not in result.sources
    assert len(result.files["group_members"]) == len(original["groups"]) - 1


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "one-by-one"])
def test_a_group_graph_refuses_is_unread_and_keeps_its_stored_members(engine, graph, synth_dir, batch):
    original = folder_files(synth_dir / TENANT)
    refused = group_named(original, "Contractors")
    before = original["group_members"][refused]
    graph.denied_groups.add(refused)
    result, _ = read(graph, batch_members=batch)
    source = result.sources["group_members"]
    assert source["complete"] is True and source["unread"] == [refused] and "403" in source["reason"]
    assert refused not in result.files["group_members"]
    assert len(result.files["group_members"]) == len(original["groups"]) - 1

    register_graph_tenant(engine, synth_dir / TENANT)
    refresh(engine, graph)  # the first pass ever: the refused group's members are not known
    process(engine)
    assert stored_members(engine, refused) is None
    graph.denied_groups.clear()
    refresh(engine, graph)
    process(engine)
    assert stored_members(engine, refused) == before
    graph.denied_groups.add(refused)
    refresh(engine, graph)
    context = process(engine)
    assert stored_members(engine, refused) == before  # unread again: its stored members kept
    assert context.directory_read  # one unread group leaves the rules evaluated


def test_hidden_membership_without_member_read_hidden_is_unread(graph, synth_dir):
    original = folder_files(synth_dir / TENANT)
    hidden = group_named(original, "Marketing")
    assert original["group_members"][hidden]  # it has members, Graph just will not show them

    result, _ = read(graph)
    assert result.files["group_members"][hidden] == original["group_members"][hidden]

    graph.grant(TENANT, PERMISSIONS - {"Member.Read.Hidden"})
    result, _ = read(graph)
    source = result.sources["group_members"]
    assert source["unread"] == [hidden] and "Member.Read.Hidden" in source["reason"]
    assert hidden not in result.files["group_members"]


# --- 5. licence refusals ----------------------------------------------------------------------------


def test_a_licence_refusal_by_400_is_a_refusal_not_a_failure(graph):
    graph.remove_p1(TENANT, status=400)
    result, _ = read(graph)
    assert result.files["users"] and not any("signInActivity" in u for u in result.files["users"])
    assert result.sources["signInActivity"]["complete"] is False
    assert "AadPremiumLicenseRequired" in result.sources["signInActivity"]["reason"]
    assert "user_registration_details" not in result.files


def test_a_premium_refusal_on_a_p1_tenant_is_tried_once_more(graph):
    graph.add_fault("non_premium", "/users", times=1, tenant=TENANT)
    graph.add_fault("non_premium", "/reports/", times=1, tenant=TENANT)
    result, _ = read(graph)
    assert "signInActivity" not in result.sources and "user_registration_details" in result.files
    assert any("signInActivity" in u for u in result.files["users"])


# --- 6. the reports limit ---------------------------------------------------------------------------


def test_reports_are_paced_to_the_limit_so_graph_never_throttles_them(graph):
    graph.reports_window = 1.0  # the faithful limit, 5 a window, over one second instead of ten
    paced = RetryPolicy(**{**QUICK.__dict__, "reports_limit": 5, "reports_window": 1.0})
    _, client = read(graph, policy=paced)
    assert client.stats.throttled_waits == 0 and client.stats.paced_seconds > 0
    assert client.stats.paced_requests >= 10  # 40 users and their records, seven a page

    _, unpaced = read(graph, policy=QUICK)  # the same reads, unpaced: Graph throttles them
    assert unpaced.stats.throttled_waits > 0


def test_the_pace_lets_five_through_then_spaces_by_the_window():
    pace = ReportsPace(5, 10.0)
    assert [pace.take()[0] for _ in range(5)] == [0.0] * 5
    assert 9.5 < pace.take()[0] <= 10.0


def test_the_budget_of_waits_grows_with_the_paced_pages(graph):
    graph.add_fault("throttle", "/groups", times=1, retry_after=3, tenant=TENANT)
    tight = RetryPolicy(**{**QUICK.__dict__, "max_total_wait": 1, "reports_limit": 1000, "reports_window": 0.01})
    with pytest.raises(GraphError, match="beyond the 1 s"):
        read(graph, policy=tight)
    graph.add_fault("throttle", "/groups", times=1, retry_after=3, tenant=TENANT)
    sized = RetryPolicy(**{**QUICK.__dict__, "max_total_wait": 1, "reports_limit": 1000, "reports_window": 5000})
    result, client = read(graph, policy=sized)  # 12 paced pages at 5 s each allow the 3 s wait
    assert result.files["groups"] and client.stats.waited_seconds >= 3


# --- 9 and 10. $batch and role assignments ---------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_a_batch_answered_with_an_error_status_but_its_responses_is_read(graph, synth_dir, status):
    graph.add_fault("batch_status", "/$batch", times=None, status=status, tenant=TENANT)
    result, _ = read(graph)
    assert result.files["group_members"] == folder_files(synth_dir / TENANT)["group_members"]
    assert "group_members" not in result.sources


def test_role_assignments_that_want_a_filter_are_read_one_definition_at_a_time(graph, synth_dir):
    graph.require_filter(TENANT)
    result, _ = read(graph)
    original = folder_files(synth_dir / TENANT)["role_assignments"]
    key = json.dumps
    assert sorted(map(key, result.files["role_assignments"])) == sorted(map(key, original))
    assert "role_assignments" not in result.sources


# --- 11. the token's audience -------------------------------------------------------------------------


def test_a_token_for_another_cloud_is_refused_by_the_authority(graph):
    credentials = GraphCredentials(
        CLIENT_ID, SECRET, graph.authority_host, scope="https://graph.microsoft.com/.default"
    )
    with httpx.Client(verify=ssl.create_default_context(cafile=graph.ca_file)) as http:
        tokens = TenantTokens(credentials, TENANT, graph.tenants()[TENANT], http)
        with pytest.raises(GraphAuthError, match="AADSTS500011"):
            tokens.token()


# --- done when ----------------------------------------------------------------------------------------


def _alerts(key: str) -> dict[tuple, tuple]:
    code, out, err = mspbyte("alerts", "list", "--tenant", key, "--json")
    assert code == 0, err
    return {
        (a["alert_type"], a["entity_id"], a.get("sku_id") or ""): (a["severity"], a["status"]) for a in json.loads(out)
    }


@pytest.mark.slow
def test_a_tenant_read_from_graph_as_real_tenants_answer_gives_the_alerts_of_its_folder(app_env, monkeypatch, tmp_path):
    """Deleted group, hidden membership without the permission, an eligible-only Global Administrator, a
    Global Reader without isPrivileged, $top limits, shuffled batches, 429s without Retry-After and the
    reports limit: the same alerts as the same tenant imported from its folder."""
    [folder] = write_snapshots(tmp_path / "synth", tenants=1, users=80, seed=34)  # a Global Reader drawn
    files = folder_files(folder)
    key = files["tenant"]["id"]
    readers = {a["principalId"] for a in files["role_assignments"] if a["roleDefinitionId"] == GLOBAL_READER}
    assert readers and all("isPrivileged" not in role for role in files["role_definitions"])

    assert mspbyte("tenants", "import", str(folder))[0] == 0
    code, _, err = mspbyte("run", "--tenant", key)
    assert code == 0, err
    from_folder = _alerts(key)

    with FakeGraph(folder.parent, page_size=25, client_secret=SECRET, faithful=True) as fake:
        fake.deleted_groups.add(group_named(files, "Newsletter"))
        fake.grant(key, PERMISSIONS - {"Member.Read.Hidden"})
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'graph.db'}")
        use_graph(monkeypatch, fake)
        assert mspbyte("db", "upgrade")[0] == 0
        monkeypatch.setenv("GRAPH_REPORTS_LIMIT", "5")  # the real limit, enforced by the faithful Graph
        code, _, err = mspbyte(
            "tenants", "add", "--tenant", key, "--name", files["tenant"]["name"], "--azure-tenant-id",
            files["tenant"]["azureTenantId"],
        )  # fmt: skip
        assert code == 0, err
        code, _, err = mspbyte("run", "--tenant", key)
        assert code == 0, err
        assert all(fault.hits for fault in fake.faults)  # its 429s without Retry-After were met
        from_graph = _alerts(key)
        with engine_for(f"sqlite:///{tmp_path / 'graph.db'}").connect() as conn:
            context = DataContextLoader(conn).load(key)

    assert from_graph == from_folder
    eligible = files["users"][ELIGIBLE_USER]["id"]
    assert {eligible, *readers} <= context.admins
    assert from_graph[("stale_user", eligible, "")][0] == "high"  # stale, and an admin's severity
