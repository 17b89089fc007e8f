"""RULES "Entities (processing)", one test per bullet, on SQLite and PostgreSQL."""

import copy

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.pipeline import PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.schema import entities
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, user

BOTH = ("m365_snapshot", "entities")


@pytest.fixture
def tenant(engine, tmp_path):
    """Import a snapshot (a callable: files -> pass result) and run both stages over it."""

    def run(files):
        import_files(engine, tmp_path / "store", files)
        result = run_tenant_pass(engine, "contoso", BOTH, PassOptions(lease_wait_seconds=1))
        assert result.status == "succeeded", result.reason
        return result.stages["entities"]

    return run


def rows(engine, entity_type="user"):
    with engine.connect() as conn:
        found = conn.execute(
            select(entities).where(entities.c.tenant == "contoso", entities.c.entity_type == entity_type)
        )
        return {row.external_id: row for row in found}


def test_first_pass_creates_every_entity_type(tenant, engine):
    counts = tenant(minimal_files(users=3))
    assert counts["created"] == 3 + 1 + 1 + 1 + 1 + 1  # users, group, role, policy, sku, tenant
    group = rows(engine, "group")["g1"]
    assert group.data["members"] == [{"@odata.type": "#microsoft.graph.user", "id": "u0"}]
    assert rows(engine, "role")["r1"].data["assignments"][0]["principalId"] == "u0"
    assert rows(engine, "user")["u0"].data["registration"]["isMfaRegistered"] is True
    assert rows(engine, "tenant")["contoso"].data["securityDefaults"]["isEnabled"] is False


def test_unchanged_second_pass_writes_nothing(tenant, engine):
    files = minimal_files()
    tenant(files)
    before = {
        (r.entity_type, r.external_id): tuple(r) for t in ("user", "group", "tenant") for r in rows(engine, t).values()
    }
    counts = tenant(copy.deepcopy(files))
    assert counts["created"] == counts["updated"] == counts["deleted"] == counts["refreshed"] == 0
    assert counts["unchanged"] == 8
    after = {
        (r.entity_type, r.external_id): tuple(r) for t in ("user", "group", "tenant") for r in rows(engine, t).values()
    }
    assert before == after


def test_sign_in_change_alone_is_not_an_update_but_is_refreshed(tenant, engine):
    files = minimal_files()
    files["users"][0]["signInActivity"] = {"lastSignInDateTime": "2026-01-01T00:00:00Z"}
    tenant(files)
    files["users"][0]["signInActivity"] = {"lastSignInDateTime": "2026-10-30T00:00:00Z"}
    counts = tenant(files)
    assert counts["updated"] == 0 and counts["refreshed"] == 1
    assert rows(engine)["u0"].data["signInActivity"]["lastSignInDateTime"] == "2026-10-30T00:00:00Z"


def test_policy_modified_time_alone_is_not_an_update(tenant, engine):
    files = minimal_files()
    tenant(files)
    files["conditional_access_policies"][0]["modifiedDateTime"] = "2026-10-01T00:00:00Z"
    counts = tenant(files)
    assert counts["updated"] == 0 and counts["refreshed"] == 1
    assert rows(engine, "policy")["p1"].data["modifiedDateTime"] == "2026-10-01T00:00:00Z"


def test_a_real_change_is_an_update(tenant, engine):
    files = minimal_files()
    tenant(files)
    files["users"][1]["displayName"] = "Renamed"
    counts = tenant(files)
    assert counts["updated"] == 1
    assert rows(engine)["u1"].display_name == "Renamed"


def test_a_membership_change_updates_the_group(tenant, engine):
    files = minimal_files()
    tenant(files)
    files["group_members"]["g1"].append({"@odata.type": "#microsoft.graph.user", "id": "u1"})
    assert tenant(files)["updated"] == 1
    assert len(rows(engine, "group")["g1"].data["members"]) == 2


def test_entities_missing_from_a_complete_file_are_soft_deleted(tenant, engine):
    files = minimal_files(users=3)
    tenant(files)
    files["users"].pop()
    assert tenant(files)["deleted"] == 1
    assert rows(engine)["u2"].deleted_at is not None


def test_an_incomplete_file_deletes_nothing(tenant, engine):
    files = minimal_files(users=3)
    tenant(files)
    files["users"].pop()
    files["tenant"]["sources"] = {"users": {"complete": False, "reason": "page 2 failed"}}
    assert tenant(files)["deleted"] == 0
    assert rows(engine)["u2"].deleted_at is None


def test_a_missing_file_deletes_nothing(tenant, engine):
    files = minimal_files()
    tenant(files)
    del files["conditional_access_policies"]
    assert tenant(files)["deleted"] == 0
    assert rows(engine, "policy")["p1"].deleted_at is None


def test_an_entity_that_comes_back_is_restored_on_the_same_row(tenant, engine):
    files = minimal_files(users=3)
    tenant(files)
    original_id = rows(engine)["u2"].id
    gone = copy.deepcopy(files)
    gone["users"].pop()
    tenant(gone)
    counts = tenant(files)
    assert counts["restored"] == 1 and counts["created"] == 0
    back = rows(engine)["u2"]
    assert back.id == original_id and back.deleted_at is None


def test_an_incomplete_sub_resource_keeps_its_stored_value(tenant, engine):
    files = minimal_files()
    tenant(files)
    files["group_members"] = {"g1": []}
    files["user_registration_details"] = []
    files["tenant"]["sources"] = {
        "group_members": {"complete": False, "reason": "throttled"},
        "user_registration_details": {"complete": False, "reason": "403: no P1"},
    }
    tenant(files)
    assert rows(engine, "group")["g1"].data["members"] == [{"@odata.type": "#microsoft.graph.user", "id": "u0"}]
    assert rows(engine)["u0"].data["registration"]["isMfaRegistered"] is True


def test_a_user_without_a_registration_record_has_none(tenant, engine):
    files = minimal_files()
    files["users"].append(user("new"))
    tenant(files)
    assert rows(engine)["new"].data["registration"] is None


def test_statements_do_not_grow_with_the_number_of_entities(engine, tmp_path):
    def first_pass_queries(key, users):
        files = minimal_files(key, users=users)
        import_files(engine, tmp_path / "store", files, name=key)
        result = run_tenant_pass(engine, key, BOTH, PassOptions())
        return result.stages["entities"]["queries"]

    assert first_pass_queries("small", 3) == first_pass_queries("large", 600) <= 6
