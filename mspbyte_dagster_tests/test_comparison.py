"""Comparison mode, run-start flag snapshots and legacy routing."""

import json

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from mspbyte_dagster.cli import main
from mspbyte_dagster.definitions import defs
from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from mspbyte_dagster.defs.resources import FeatureFlagsResource
from mspbyte_dagster.lib.alerts import AlertOutcome
from mspbyte_dagster.lib.comparison import compare, path_outputs
from mspbyte_dagster.lib.context import DataContextLoader
from mspbyte_dagster.lib.flag_store import DatabaseFlagStore
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FeatureFlagManager, RuntimeFlag
from mspbyte_dagster.lib.onboarding import import_folders
from mspbyte_dagster.lib.passes import ASSETS
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.findings import load_findings
from mspbyte_dagster.lib.store.schema import alert_events, alerts, entities, entity_relationships, findings, metadata
from mspbyte_dagster_tests.snapshots import import_files, minimal_files, user, write_folder
from mspbyte_dev.synthetic import write_snapshots

LEGACY = FeatureFlagManager(FLAG_DEFAULTS, runtime={"new_pipeline": RuntimeFlag(rollout=0)})


def tenant_state(engine, tenant):
    """What a pass leaves in the database for a tenant, without ids, clocks and the tenant's own key."""

    def anonymous(rows):
        return sorted(
            tuple("<tenant>" if value == tenant else value for value in row)
            for row in rows
            if not (row[0] == "tenant" and len(row) == 5)
        )

    return {name: anonymous(rows) for name, rows in _tenant_rows(engine, tenant).items()}


def _tenant_rows(engine, tenant):
    parent, child = aliased(entities), aliased(entities)
    with engine.connect() as conn:
        return {
            "entities": sorted(
                conn.execute(
                    select(
                        entities.c.entity_type,
                        entities.c.external_id,
                        entities.c.data_hash,
                        entities.c.state,
                        entities.c.deleted_at,
                    ).where(entities.c.tenant == tenant)
                ).all()
            ),
            "edges": sorted(
                conn.execute(
                    select(entity_relationships.c.relationship_type, parent.c.external_id, child.c.external_id)
                    .join(parent, parent.c.id == entity_relationships.c.parent_id)
                    .join(child, child.c.id == entity_relationships.c.child_id)
                    .where(entity_relationships.c.tenant == tenant)
                ).all()
            ),
            "findings": sorted(
                conn.execute(
                    select(findings.c.alert_type, findings.c.entity_id, findings.c.sku_id, findings.c.severity).where(
                        findings.c.tenant == tenant
                    )
                ).all()
            ),
            "alerts": sorted(
                conn.execute(
                    select(
                        alerts.c.alert_type,
                        alerts.c.entity_type,
                        alerts.c.entity_id,
                        alerts.c.sku_id,
                        alerts.c.severity,
                        alerts.c.status,
                    ).where(alerts.c.tenant == tenant)
                ).all()
            ),
            "events": sorted(
                conn.execute(
                    select(alert_events.c.action, alert_events.c.severity).where(alert_events.c.tenant == tenant)
                ).all()
            ),
        }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_snapshots(tmp_path_factory.mktemp("cmp"), tenants=4, users=40, seed=11)


def test_synthetic_tenants_show_no_discrepancy(engine, tmp_path, synthetic):
    for item in import_folders(engine, synthetic):
        result = run_tenant_pass(engine, item.tenant, ASSETS, PassOptions(compare=True))
        assert result.status == "succeeded", result.reason
        report = result.stages["comparison_report"]
        assert report["has_discrepancies"] is False, report["report_markdown"]
        assert report["performance"]["legacy"]["queries"] > report["performance"]["new"]["queries"]


def test_a_comparison_pass_writes_exactly_what_a_single_path_pass_writes(engine, tmp_path):
    files = minimal_files("single", users=5)
    files["users"].append(user("gone", enabled=False, assignedLicenses=[{"skuId": "s1", "disabledPlans": []}]))
    import_files(engine, tmp_path / "store", files, name="single")
    twin = json.loads(json.dumps(files))
    twin["tenant"]["id"] = "compared"
    import_files(engine, tmp_path / "store", twin, name="compared")
    for _ in range(2):  # first pass creates, second pass over the same snapshot
        assert run_tenant_pass(engine, "single", STAGES, PassOptions()).status == "succeeded"
        assert run_tenant_pass(engine, "compared", ASSETS, PassOptions(compare=True)).status == "succeeded"
    assert tenant_state(engine, "compared") == tenant_state(engine, "single")


def test_the_legacy_path_selected_writes_and_the_new_one_is_rolled_back(engine, tmp_path):
    import_files(engine, tmp_path / "store", minimal_files("legacy", users=4), name="legacy")
    import_files(engine, tmp_path / "store", minimal_files("plain", users=4), name="plain")
    result = run_tenant_pass(engine, "legacy", ASSETS, PassOptions(flags=LEGACY, compare=True))
    assert result.stages["tenant_context"]["path"] == "legacy"
    assert result.comparison["paths"]["new"]["alerts"] == "new" and not result.comparison["has_discrepancies"]
    run_tenant_pass(engine, "plain", STAGES, PassOptions(flags=LEGACY))
    state = tenant_state(engine, "legacy")
    assert state == tenant_state(engine, "plain") and state["alerts"]


def test_a_path_fed_a_different_snapshot_shows_the_discrepancy(engine, tmp_path):
    left = minimal_files("left", users=3)
    right = minimal_files("right", users=3)
    right["users"].append(user("extra", enabled=False, assignedLicenses=[{"skuId": "s1", "disabledPlans": []}]))
    outputs = {}
    for key, files in (("left", left), ("right", right)):
        import_files(engine, tmp_path / "store", files, name=key)
        run_tenant_pass(engine, key, STAGES, PassOptions())
        with engine.connect() as conn:
            context = DataContextLoader(conn).load(key)
            outputs[key] = path_outputs(conn, context, load_findings(conn, key), AlertOutcome({}, {}, ""), {})
    report = compare("left", outputs["left"], outputs["right"])
    assert report["has_discrepancies"]
    assert "user:extra" in report["entities"]["extra_in_new"]
    assert any(item.startswith("license_waste:user:extra:s1") for item in report["findings"]["extra_in_new"])
    assert "discrepancies found" in report["report_markdown"]


def test_flags_are_read_once_a_change_mid_run_waits_for_the_next(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", str(engine.url.render_as_string(hide_password=False)))
    import_files(engine, tmp_path / "store", minimal_files(), name="c")
    snapshot = FeatureFlagsResource().snapshot(engine)  # what the op does at run start
    DatabaseFlagStore(engine).set_enabled("new_pipeline", False)  # changed while the run goes on
    during = run_tenant_pass(engine, "contoso", STAGES, PassOptions(flags=snapshot))
    assert set(during.stages["m365_snapshot"]["paths"].values()) == {"new"}
    after = run_tenant_pass(engine, "contoso", STAGES, PassOptions(flags=FeatureFlagsResource().snapshot(engine)))
    assert set(after.stages["m365_snapshot"]["paths"].values()) == {"legacy"}


def test_each_stage_flag_switches_its_stage_alone(engine, tmp_path):
    import_files(engine, tmp_path / "store", minimal_files(), name="c")
    for flag, stages in (
        ("batch_loading", {"tenant_context", "relationships"}),
        ("unified_analyzer", {"findings"}),
        ("alert_manager", {"alerts"}),
    ):
        manager = FeatureFlagManager(FLAG_DEFAULTS, runtime={flag: RuntimeFlag(enabled=False)})
        paths = run_tenant_pass(engine, "contoso", STAGES, PassOptions(flags=manager)).stages["m365_snapshot"]["paths"]
        assert {s for s, p in paths.items() if p == "legacy"} == stages, flag


@pytest.mark.slow
def test_a_run_records_its_flags_as_tags_and_materializes_the_report(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURE_COMPARISON_MODE", "true")
    monkeypatch.setenv("FEATURE_COMPARISON_MODE_ROLLOUT", "100")
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "import", str(write_folder(tmp_path / "c", minimal_files()))]).exit_code == 0
    assert runner.invoke(main, ["flags", "rollout", "alert_manager", "40"]).exit_code == 0
    result = defs.resolve_job_def("tenant_pipeline").execute_in_process(
        instance=DagsterInstance.get(), tags={RANGE_START_TAG: "contoso", RANGE_END_TAG: "contoso"}
    )
    assert result.success
    tags = DagsterInstance.get().get_run_by_id(result.run_id).tags
    flags_hash, changed = tags["mspbyte/flags"].split(" ", 1)
    assert len(flags_hash) == 12 and not any(key.startswith("mspbyte/flag.") for key in tags)  # one tag
    assert changed == "alert_manager=on 40%, comparison_mode=on 100%"  # what differs from the defaults
    event = DagsterInstance.get().get_latest_materialization_event(AssetKey("comparison_report"))
    metadata = event.asset_materialization.metadata
    assert metadata["has_discrepancies"].value is False and "no discrepancy" in metadata["report"].value
    snapshot_meta = DagsterInstance.get().get_latest_materialization_event(AssetKey("m365_snapshot"))
    assert snapshot_meta.asset_materialization.metadata["flags"].value["comparison_mode"] is True


def test_mspbyte_compare_prints_the_report_as_json(app_env, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "import", str(write_folder(tmp_path / "c", minimal_files()))]).exit_code == 0
    engine = engine_for(app_env["DATABASE_URL"])
    before = table_rows(engine)
    result = runner.invoke(main, ["compare", "--tenant", "contoso", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["has_discrepancies"] is False and report["alert_actions"]["match"]
    assert report["alert_actions"]["new"] > 0  # it did run a pass...
    assert table_rows(engine) == before  # ...and wrote nothing: no entities, alerts or ledger row
    assert runner.invoke(main, ["compare", "--tenant", "nobody"]).exit_code == 2


def table_rows(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in metadata.sorted_tables}
