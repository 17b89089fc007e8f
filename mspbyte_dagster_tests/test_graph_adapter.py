"""The Microsoft 365 adapter against a local Graph over real HTTPS: paging, $batch, faults, gaps and bad data."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.adapters.microsoft365.auth import GraphAuthError
from mspbyte_dagster.lib.adapters.microsoft365.client import GraphError, Limits, RetryPolicy
from mspbyte_dagster.lib.adapters.microsoft365.files import DATA_FILES
from mspbyte_dagster.lib.adapters.microsoft365.reader import read_tenant
from mspbyte_dagster.lib.adapters.snapshot_files import read_snapshot
from mspbyte_dagster.lib.context import is_privileged
from mspbyte_dagster.lib.graph_sync import refresh_graph_snapshot
from mspbyte_dagster.lib.snapshots import load_snapshot
from mspbyte_dagster.lib.store import tenants as tenant_store
from mspbyte_dagster.lib.store.schema import quarantined_records
from mspbyte_dagster_tests.graph_fixtures import (
    QUICK,
    SECRET,
    connect,
    folder_files,
    read,
    register_graph_tenant,
    synthetic_graph,
)
from mspbyte_dagster_tests.snapshots import minimal_files, user, write_folder
from mspbyte_dev.fake_graph import MALFORMED_BODY, FakeGraph

graph = pytest.fixture(synthetic_graph, name="graph")

GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
TENANT = "synth-3-000"  # the full-setup variant: P1, every file


def refresh(engine, store_root, fake: FakeGraph, key: str, **options) -> dict | None:
    with connect(fake) as connection:
        return refresh_graph_snapshot(engine, key, connect=lambda: connection, **options)


def stored_snapshot(engine, key: str):
    """The tenant's current snapshot as the app database keeps it."""
    with engine.connect() as conn:
        return load_snapshot(conn, key, tenant_store.current_snapshot(conn, key).snapshot_id)


def quarantine_rows(engine, key: str) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(quarantined_records).where(quarantined_records.c.tenant == key)))


@pytest.mark.slow
def test_round_trip_folder_graph_adapter_gives_back_every_file(engine, tmp_path, graph, synth_dir):
    for folder in sorted(synth_dir.iterdir()):
        original = folder_files(folder)
        register_graph_tenant(engine, folder)
        captured_at = read_snapshot(folder).captured_at
        figures = refresh(engine, tmp_path / "store", graph, folder.name, captured_at=captured_at)
        stored = stored_snapshot(engine, folder.name)
        kept = {"tenant": stored.tenant, **stored.files}
        assert kept == original  # every file, the same objects, tenant.json included
        assert figures["graph_pages"] > len(DATA_FILES) and figures["quarantined_records"] == 0
    assert graph.token_requests == 4  # one token per tenant, cached across its requests


def test_group_members_come_through_batch_twenty_groups_a_call(graph, synth_dir):
    groups = json.loads((synth_dir / TENANT / "groups.json").read_text())
    members = json.loads((synth_dir / TENANT / "group_members.json").read_text())
    result, client = read(graph)
    assert result.files["group_members"] == members
    batch_calls = graph.requests.count("POST /$batch")
    # page size 7: a group with more members is read on through its sub-request's nextLink, in later batches
    assert batch_calls > math.ceil(len(groups) / 20)
    assert not [r for r in graph.requests if r.startswith("GET /groups/")]
    member_pages = sum(max(1, math.ceil(len(members[g["id"]]) / 7)) for g in groups)
    assert len([r for r in graph.requests if r.startswith("$batch GET /groups/")]) == member_pages


@pytest.mark.slow
def test_without_batch_every_group_costs_a_request(synth_dir):
    with FakeGraph(synth_dir, client_secret=SECRET) as fake:
        batched, batched_client = read(fake)
        single, single_client = read(fake, batch_members=False)
    groups = len(batched.files["groups"])
    assert single.files == batched.files
    assert single_client.stats.requests - batched_client.stats.requests == groups - math.ceil(groups / 20)


@pytest.mark.slow
def test_throttled_request_waits_retry_after_then_succeeds(graph, synth_dir):
    graph.add_fault("throttle", "/users", times=2, retry_after=1)
    started = time.monotonic()
    result, client = read(graph)
    assert time.monotonic() - started >= 2.0  # Retry-After: 1 s, twice
    assert client.stats.throttled_waits == 2 and client.stats.retries == 2 and client.stats.waited_seconds >= 2
    assert result.files["users"] == json.loads((synth_dir / TENANT / "users.json").read_text())
    assert result.sources == {}


@pytest.mark.slow
def test_throttling_inside_a_batch_answer_is_honoured_per_request(graph, synth_dir):
    graph.add_fault("throttle", "/groups/", times=3, retry_after=1)
    started = time.monotonic()
    result, client = read(graph)
    assert time.monotonic() - started >= 1.0
    assert client.stats.throttled_waits >= 1 and client.stats.retries == 3
    assert result.files["group_members"] == json.loads((synth_dir / TENANT / "group_members.json").read_text())


def test_unavailable_without_retry_after_backs_off_and_retries(graph, synth_dir):
    graph.add_fault("unavailable", "/subscribedSkus", times=2)
    graph.add_fault("unavailable", "/identity/conditionalAccess/policies", times=1, status=504)
    result, client = read(graph)
    assert client.stats.retries == 3 and client.stats.throttled_waits == 3 and client.stats.waited_seconds > 0
    assert graph.requests.count("GET /subscribedSkus") == 3
    assert result.files["subscribed_skus"] == json.loads((synth_dir / TENANT / "subscribed_skus.json").read_text())
    assert "conditional_access_policies" in result.files and result.sources == {}


@pytest.mark.slow
def test_a_slow_answer_times_out_and_is_asked_again(graph):
    graph.add_fault("slow", "/roleManagement/directory/roleAssignments", times=1, delay=3)
    result, client = read(graph, policy=RetryPolicy(max_attempts=3, base_delay=0.05, timeout=1))
    assert client.stats.retries >= 1 and client.stats.throttled_waits == 0
    assert graph.requests.count("GET /roleManagement/directory/roleAssignments") >= 2
    assert result.files["role_assignments"] and "role_assignments" not in result.sources


def test_a_token_graph_refuses_is_renewed_once(graph):
    graph.add_fault("expired_token", "/users", times=1)
    result, client = read(graph)
    # requests in flight with the refused token are each asked again, with the one new token
    assert graph.token_requests == 2 and client.tokens.fetched == 2 and client.stats.retries >= 1
    assert result.sources == {} and len(result.files["users"]) == 40


def test_one_token_serves_every_request_until_it_nears_expiry(graph):
    _, client = read(graph)
    assert client.stats.requests > 20 and graph.token_requests == 1


@pytest.mark.slow
def test_requests_in_flight_stay_within_the_tenant_and_the_overall_bound(graph):
    graph.add_fault("slow", times=None, delay=0.2)  # every answer takes a while: requests pile up
    tenants = [TENANT, "synth-3-001"]
    with connect(graph, limits=Limits(per_tenant=3, overall=4)) as connection, ThreadPoolExecutor(2) as pool:
        clients = [connection.tenant(key, graph.tenants()[key]) for key in tenants]
        reads = list(pool.map(read_tenant, clients))
    assert all(read.sources == {} for read in reads)
    assert 3 < graph.most_in_flight["all"] <= 4  # two tenants together were held by the overall bound
    assert all(graph.most_in_flight[graph.tenants()[key]] <= 3 for key in tenants)


def test_a_tenant_that_keeps_failing_raises_naming_tenant_endpoint_and_status(graph):
    graph.add_fault("unavailable", "/subscribedSkus", times=None, retry_after=0)
    with pytest.raises(GraphError) as failure:
        read(graph)
    assert failure.value.status == 503
    assert f"tenant {TENANT}" in str(failure.value) and "/subscribedSkus" in str(failure.value)
    assert graph.requests.count("GET /subscribedSkus") == QUICK.max_attempts


def test_a_wait_beyond_the_tenant_budget_fails_without_waiting(graph):
    graph.add_fault("throttle", "/users", times=None, retry_after=120)
    with pytest.raises(GraphError, match=r"wait 120\.0 s more, beyond the 60 s") as failure:
        read(graph)
    assert TENANT in str(failure.value) and "/users" in str(failure.value)


def test_a_wrong_secret_fails_naming_the_tenant_and_never_the_secret(graph):
    with connect(graph, secret="not-the-" + SECRET) as connection:
        client = connection.tenant(TENANT, graph.tenants()[TENANT])
        with pytest.raises(GraphAuthError, match="invalid_client") as failure:
            read_tenant(client)
    assert TENANT in str(failure.value) and SECRET not in str(failure.value)


def test_a_tenant_without_p1_is_read_without_sign_in_data_and_says_so(engine, tmp_path, graph, synth_dir):
    folder = synth_dir / TENANT
    register_graph_tenant(engine, folder)
    graph.remove_p1(TENANT)
    refresh(engine, tmp_path / "store", graph, TENANT)
    snapshot = stored_snapshot(engine, TENANT)
    users = snapshot.files["users"]
    assert len(users) == 40 and not any("signInActivity" in u for u in users)
    assert snapshot.is_complete("users")  # re-read without signInActivity: whole
    assert snapshot.sources["signInActivity"]["complete"] is False
    assert "Authentication_RequestFromNonPremiumTenantOrB2CTenant" in snapshot.sources["signInActivity"]["reason"]
    assert "user_registration_details" not in snapshot.files
    assert not snapshot.is_complete("user_registration_details")
    assert "HTTP 403" in snapshot.sources["user_registration_details"]["reason"]
    assert snapshot.is_complete("groups") and snapshot.is_complete("conditional_access_policies")


def test_a_malformed_page_is_quarantined_raw_and_the_rest_is_read(engine, tmp_path, synth_dir):
    register_graph_tenant(engine, synth_dir / TENANT)
    with FakeGraph(synth_dir, page_size=10, client_secret=SECRET) as fake:
        fake.add_fault("malformed", "/users", skip=1)  # the second page of users
        figures = refresh(engine, tmp_path / "store", fake, TENANT)
    [row] = quarantine_rows(engine, TENANT)
    assert row.source_file == "users" and row.raw == MALFORMED_BODY and "not JSON" in row.reason
    snapshot = stored_snapshot(engine, TENANT)
    assert snapshot.files["users"] == json.loads((synth_dir / TENANT / "users.json").read_text())[:10]
    assert snapshot.sources["users"]["complete"] is False and not snapshot.is_complete("users")
    assert all(snapshot.is_complete(stem) for stem in DATA_FILES if stem != "users")
    assert figures["quarantined_records"] == 1 and row.snapshot_id is not None


def test_records_that_break_the_contract_are_quarantined_the_others_kept(engine, tmp_path):
    files = minimal_files("contoso", users=4)
    no_id = {k: v for k, v in user("u-missing").items() if k != "id"}
    files["users"] += [no_id, user("u-typed", enabled="yes")]
    files["group_members"]["g1"].append({"@odata.type": "#microsoft.graph.user"})
    write_folder(tmp_path / "graph" / "contoso", files)
    register_graph_tenant(engine, tmp_path / "graph" / "contoso")
    with FakeGraph(tmp_path / "graph", client_secret=SECRET) as fake:
        refresh(engine, tmp_path / "store", fake, "contoso")
    rows = {(row.source_file, row.record_index): row for row in quarantine_rows(engine, "contoso")}
    assert set(rows) == {("users", 4), ("users", 5), ("group_members", 1)}
    assert "field 'id': is missing" in rows["users", 4].reason and json.loads(rows["users", 4].raw) == no_id
    assert "field 'accountEnabled'" in rows["users", 5].reason
    assert json.loads(rows["users", 5].raw)["accountEnabled"] == "yes"
    snapshot = stored_snapshot(engine, "contoso")  # what was kept keeps the contract
    assert [u["id"] for u in snapshot.files["users"]] == ["u0", "u1", "u2", "u3"]
    assert snapshot.files["group_members"] == {"g1": [{"@odata.type": "#microsoft.graph.user", "id": "u0"}]}
    assert snapshot.incomplete().keys() == {"users", "group_members"}
    assert "2 quarantined" in snapshot.incomplete()["users"]


def test_a_permission_not_granted_leaves_the_file_out_naming_the_permission(engine, tmp_path):
    files = minimal_files("contoso")
    del files["conditional_access_policies"]  # the fake answers 403, as for a permission not consented
    write_folder(tmp_path / "graph" / "contoso", files)
    register_graph_tenant(engine, tmp_path / "graph" / "contoso")
    with FakeGraph(tmp_path / "graph", client_secret=SECRET) as fake:
        refresh(engine, tmp_path / "store", fake, "contoso")
    snapshot = stored_snapshot(engine, "contoso")
    assert "conditional_access_policies" not in snapshot.files
    assert "Policy.Read.All" in snapshot.incomplete()["conditional_access_policies"]
    assert snapshot.is_complete("users")


def test_a_files_mode_tenant_is_not_read_from_graph(engine, tmp_path, graph, synth_dir):
    from mspbyte_dagster.lib.onboarding import import_folders

    import_folders(engine, [synth_dir / TENANT])
    assert refresh(engine, tmp_path / "store", graph, TENANT) is None
    assert graph.requests == [] and graph.token_requests == 0


def test_the_local_graph_serves_role_definitions_as_v1_does_without_is_privileged(tmp_path):
    """A beta-only field must not reach the reader, or the tests would pass on a field real tenants lack."""
    files = minimal_files("contoso")
    files["role_definitions"].append(
        {"id": GLOBAL_READER, "templateId": GLOBAL_READER, "displayName": "Global Reader", "isPrivileged": True}
    )
    write_folder(tmp_path / "graph" / "contoso", files)
    with FakeGraph(tmp_path / "graph", client_secret=SECRET) as fake:
        result, _ = read(fake, "contoso")
    roles = result.files["role_definitions"]
    assert roles and not any("isPrivileged" in role for role in roles)
    assert all(is_privileged(role) for role in roles)  # Global Administrator and Global Reader: by the list
