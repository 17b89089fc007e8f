"""A tenant not refreshed within twice REFRESH_INTERVAL_MINUTES shows as overdue: check tenant_fresh fails on
its partition, once, and its next full pass passes it again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, build_sensor_context
from sqlalchemy import update

from mspbyte_dagster.definitions import defs
from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.defs.sensors import tenant_freshness_sensor
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, run_tenant_pass
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.schema import pipeline_ledger
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def freshness_results(instance: DagsterInstance) -> list[tuple[str, bool, str]]:
    """Every evaluation of tenant_fresh on a tenant, as the check's history holds it."""
    key = AssetCheckKey(AssetKey("m365_snapshot"), "tenant_fresh")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    evaluations = [r.event.dagster_event.event_specific_data for r in history if r.event and r.partition]
    return sorted((e.partition, e.passed, e.description or "") for e in evaluations)


def tick(instance: DagsterInstance, cursor: str | None):
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"database": DatabaseResource()})
    outcome = tenant_freshness_sensor(context)
    return outcome, context.cursor


def test_overdue_tenants_fail_the_check_once_and_a_full_pass_passes_it(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("REFRESH_INTERVAL_MINUTES", "60")
    engine = engine_for(app_env["DATABASE_URL"])
    for key in ("alpha", "bravo"):
        import_files(engine, tmp_path / key, minimal_files(key, users=5))
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(TENANTS, ["alpha", "bravo"])
    assert run_tenant_pass(engine, "alpha", STAGES, PassOptions()).status == "succeeded"

    outcome, cursor = tick(instance, None)
    assert "1 tenant(s) overdue: bravo" in outcome.skip_message and json.loads(cursor) == ["bravo"]
    [(tenant, passed, description)] = freshness_results(instance)
    assert (tenant, passed) == ("bravo", False) and "never refreshed; expected within 120 minutes" in description
    assert tick(instance, cursor)[1] == cursor and len(freshness_results(instance)) == 1  # reported once

    with engine.begin() as conn:  # alpha's last pass three hours ago: overdue too
        conn.execute(update(pipeline_ledger).values(started_at=datetime.now(UTC) - timedelta(hours=3)))
    outcome, cursor = tick(instance, cursor)
    assert json.loads(cursor) == ["alpha", "bravo"]
    assert ("alpha", False) in {(t, p) for t, p, _ in freshness_results(instance)}

    # bravo's full pass in a run passes its check again, and the sensor lets it go
    run = defs.resolve_job_def("tenant_pipeline").execute_in_process(
        instance=instance, tags={RANGE_START_TAG: "bravo", RANGE_END_TAG: "bravo"}
    )
    assert run.success
    assert ("bravo", True, "refreshed by this pass") in freshness_results(instance)
    assert json.loads(tick(instance, cursor)[1]) == ["alpha"]
