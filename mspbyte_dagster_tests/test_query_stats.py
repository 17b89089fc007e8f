"""Statement budgets of context loading and linking, and the per-module query instrumentation.

Counts are deterministic (lib/store/query_stats.py counts every statement a
pass sends), so they are asserted exactly; times never are.
"""

import copy
import json
import logging
import re

import pytest
from sqlalchemy import select

from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FeatureFlagManager, RuntimeFlag
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.query_stats import fingerprint
from mspbyte_dagster.lib.store.schema import pipeline_ledger
from mspbyte_dagster_tests.graph_builders import assignment, directory, groups_in, licensed, role, sku, users_in
from mspbyte_dagster_tests.snapshots import import_files, minimal_files
from mspbyte_dev.synthetic import write_snapshots

BUDGET = {"tenant_context": 7, "relationships": 8}  # DESIGN.md "Data flow"
LEGACY = PassOptions(flags=FeatureFlagManager(FLAG_DEFAULTS, runtime={"batch_loading": RuntimeFlag(rollout=0)}))
UNTIMED = FeatureFlagManager(FLAG_DEFAULTS, runtime={"performance_monitoring": RuntimeFlag(enabled=False)})
SLOW = re.compile(r"Slow query detected: tenant=\S+ module=(\S+) duration_ms=(\d+\.\d) statement=(.+)", re.S)


@pytest.fixture(scope="module")
def synthetic_tenant(tmp_path_factory):
    """A callable: users -> the folder of a one-tenant synthetic snapshot of that size (generated once)."""
    folders = {}

    def folder(users):
        if users not in folders:
            out = tmp_path_factory.mktemp(f"synthetic-{users}")
            folders[users] = write_snapshots(out, tenants=1, users=users, seed=users)[0]
        return folders[users]

    return folder


def renamed(folder, key, tmp_path):
    """The same snapshot under another tenant key, so two paths can each make a first pass over it."""
    target = tmp_path / "renamed" / key
    target.mkdir(parents=True)
    for source in folder.iterdir():
        content = json.loads(source.read_text(encoding="utf-8"))
        if source.stem == "tenant":
            content["id"] = key
        (target / source.name).write_text(json.dumps(content), encoding="utf-8")
    return target


def first_pass(engine, tmp_path, folder, options=None):
    [imported] = import_folders(engine, [folder])
    result = run_tenant_pass(engine, imported.tenant, STAGES, options or PassOptions())
    assert result.status == "succeeded", result.reason
    return result


def statements(result) -> dict[str, int]:
    return {stage: result.stages[stage]["queries"] for stage in BUDGET}


def ledger_row(engine, tenant):
    """The tenant's latest pass in the ledger."""
    with engine.connect() as conn:
        return conn.execute(
            select(pipeline_ledger).where(pipeline_ledger.c.tenant == tenant).order_by(pipeline_ledger.c.id.desc())
        ).first()


def test_context_and_linking_statements_are_the_same_for_10_and_2000_users_and_within_budget(
    engine, tmp_path, synthetic_tenant
):
    small = statements(first_pass(engine, tmp_path, synthetic_tenant(10)))
    large = statements(first_pass(engine, tmp_path, synthetic_tenant(2000)))
    assert small == large
    assert all(small[stage] <= limit for stage, limit in BUDGET.items()), small


def test_legacy_statements_grow_with_the_tenant_at_least_one_per_entity_and_edge(engine, tmp_path, synthetic_tenant):
    ratios = {}
    for users in (10, 100):
        folder = synthetic_tenant(users)
        new = statements(first_pass(engine, tmp_path, renamed(folder, f"new-{users}", tmp_path)))
        result = first_pass(engine, tmp_path, renamed(folder, f"legacy-{users}", tmp_path), LEGACY)
        legacy = statements(result)
        assert result.stages["tenant_context"]["path"] == result.stages["relationships"]["path"] == "legacy"
        assert legacy["tenant_context"] >= sum(result.stages["tenant_context"]["entities"].values())
        assert legacy["relationships"] >= sum(result.stages["relationships"]["edges"].values())
        ratios[users] = {stage: legacy[stage] / new[stage] for stage in BUDGET}
    assert all(ratios[100][stage] > ratios[10][stage] for stage in BUDGET), ratios


def test_linking_stays_within_budget_while_creating_updating_and_removing_edges(engine, tmp_path):
    files = directory(
        [licensed("u0", "s1"), licensed("u1")],
        groups={"g1": users_in("u0", "u1"), "g2": []},
        roles=[role("r1")],
        assignments=[assignment("u0", "r1")],
        skus=[sku("s1")],
    )
    import_files(engine, tmp_path / "store", files)
    assert run_tenant_pass(engine, "contoso", STAGES, PassOptions()).status == "succeeded"
    changed = copy.deepcopy(files)
    changed["group_members"] = {"g1": users_in("u0") + groups_in("g2"), "g2": users_in("u1")}  # u1 now indirect
    changed["role_assignments"] = []
    changed["users"][1]["assignedLicenses"] = [{"skuId": "s1", "disabledPlans": []}]
    import_files(engine, tmp_path / "store", changed)
    figures = run_tenant_pass(engine, "contoso", STAGES, PassOptions()).stages["relationships"]
    assert figures["created"]["has_license"] == figures["created"]["member_of"] == 1
    assert figures["updated"] == 1 and figures["removed"]["assigned_role"] == 1
    assert figures["queries"] <= BUDGET["relationships"]


PATHS = {
    "new": (PassOptions(), "DataContextLoader", "Microsoft365Linker"),
    "legacy": (LEGACY, "LegacyContextLoader", "LegacyLinker"),
}


@pytest.mark.parametrize("path", PATHS)
def test_statements_are_attributed_to_the_module_that_issued_them(engine, tmp_path, path):
    options, loader, linker = PATHS[path]
    import_files(engine, tmp_path / "store", minimal_files())
    result = run_tenant_pass(engine, "contoso", STAGES, options)
    row = ledger_row(engine, "contoso")
    by_module = row.details["query_stats"]["by_module"]
    assert by_module[loader] == result.stages["tenant_context"]["queries"] > 0
    assert by_module[linker] == result.stages["relationships"]["queries"] > 0
    assert 0 < by_module["AlertManager"] <= result.stages["alerts"]["queries"]
    assert sum(by_module.values()) == row.queries == row.details["query_stats"]["queries"]


LIVE_ENTITIES = re.compile(
    r"SELECT entities\.id, entities\.entity_type, entities\.external_id, entities\.state, entities\.data "
)


def entity_reads(caplog) -> list[str]:
    """The modules that read the tenant's live entities whole, in order (from the slow-statement log)."""
    return [m.group(1) for m in slow_logs(caplog) if LIVE_ENTITIES.match(m.group(3))]


def test_the_context_of_a_pass_is_built_from_the_entities_its_linker_read(engine, tmp_path, caplog):
    import_files(engine, tmp_path / "store", minimal_files())
    caplog.set_level(logging.WARNING, logger="mspbyte")
    linked = run_tenant_pass(engine, "contoso", STAGES, PassOptions(slow_query_threshold_ms=0))
    assert entity_reads(caplog) == ["Microsoft365Linker"]
    caplog.clear()
    alone = run_tenant_pass(engine, "contoso", ("tenant_context",), PassOptions(slow_query_threshold_ms=0))
    assert entity_reads(caplog) == ["DataContextLoader"]  # a context loaded without the linker reads them
    assert alone.stages["tenant_context"]["queries"] == linked.stages["tenant_context"]["queries"] + 1
    assert alone.stages["tenant_context"]["entities"] == linked.stages["tenant_context"]["entities"]
    assert alone.stages["tenant_context"]["admins"] == linked.stages["tenant_context"]["admins"] == 2


def test_fingerprint_keeps_the_statement_shape_without_its_values():
    statement = "SELECT *\n  FROM users WHERE name = 'O''Hara-8675309' AND age > 42 LIMIT 10"
    assert fingerprint(statement) == "SELECT * FROM users WHERE name = ? AND age > ? LIMIT ?"


def slow_logs(caplog) -> list[re.Match]:
    return [m for r in caplog.records if (m := SLOW.fullmatch(r.getMessage()))]


def test_a_slow_statement_is_logged_with_its_module_duration_and_a_value_free_fingerprint(engine, tmp_path, caplog):
    files = minimal_files("zq-8675309")
    files["users"][0]["displayName"] = "Quixote Zebedee"
    import_files(engine, tmp_path / "store", files)
    caplog.set_level(logging.WARNING, logger="mspbyte")
    result = run_tenant_pass(engine, "zq-8675309", STAGES, PassOptions(slow_query_threshold_ms=0))
    logged = slow_logs(caplog)
    # every statement is logged; the pass's figure stops before the ledger row that records it is written
    assert len(logged) >= result.slow_queries > 0
    assert {"DataContextLoader", "Microsoft365Linker", "AlertManager"} <= {m.group(1) for m in logged}
    for match in logged:  # the line names the tenant; the statement's shape holds no value
        assert match.group(0).startswith("Slow query detected: tenant=zq-8675309 ")
        assert "8675309" not in match.group(3) and "Quixote" not in match.group(3)
    row = ledger_row(engine, "zq-8675309")
    assert row.slow_queries == row.queries == row.details["query_stats"]["slow_queries"] == result.slow_queries


def test_without_performance_monitoring_statements_are_counted_but_not_timed(engine, tmp_path, caplog):
    import_files(engine, tmp_path / "store", minimal_files("timed"), name="timed")
    import_files(engine, tmp_path / "store", minimal_files("untimed"), name="untimed")
    run_tenant_pass(engine, "timed", STAGES, PassOptions(slow_query_threshold_ms=0))
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="mspbyte")
    result = run_tenant_pass(engine, "untimed", STAGES, PassOptions(slow_query_threshold_ms=0, flags=UNTIMED))
    assert result.status == "succeeded", result.reason
    assert slow_logs(caplog) == []
    timed, untimed = ledger_row(engine, "timed"), ledger_row(engine, "untimed")
    assert untimed.slow_queries == 0 and untimed.details["query_stats"]["milliseconds_by_module"] == {}
    assert untimed.details["flags"]["performance_monitoring"] is False
    assert untimed.details["query_stats"]["by_module"] == timed.details["query_stats"]["by_module"]
    assert untimed.queries == timed.queries > 0
