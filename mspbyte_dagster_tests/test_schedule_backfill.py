"""The refresh schedule and UI backfills put many tenants in one run: contiguous ranges of at most 50."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from dagster import AssetKey, build_schedule_context, partition_loading_context

from mspbyte_dagster.cli import main
from mspbyte_dagster.definitions import defs
from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS, TRIGGER_TAG
from mspbyte_dagster.defs.schedules import refresh_cron, tenant_refresh_schedule
from mspbyte_dagster.lib.batching import RUN_BATCH
from mspbyte_dagster.settings import Settings, SettingsError
from mspbyte_dagster_tests import test_sync_sensor

# The sensor tests' fixtures: a Dagster home copied from a session template, its instance.
dagster_home_template = test_sync_sensor.dagster_home_template
instance = test_sync_sensor.instance

STAGES = sorted(defs.resolve_assets_def(AssetKey("m365_snapshot")).keys)  # the tenant assets, partitioned


def ranges(requests) -> list[tuple[str, str]]:
    return [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests]


def scheduled_requests(instance):
    context = build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 11, 29, 14, tzinfo=UTC))
    return tenant_refresh_schedule.evaluate_tick(context)


@pytest.mark.parametrize(
    ("minutes", "cron"),
    [(1, "*/1 * * * *"), (15, "*/15 * * * *"), (60, "0 * * * *"), (120, "0 */2 * * *"), (1440, "0 */24 * * *")],
)
def test_the_refresh_interval_becomes_the_schedules_cron(minutes, cron):
    assert Settings.from_env({"REFRESH_INTERVAL_MINUTES": str(minutes)}).refresh_interval_minutes == minutes
    assert refresh_cron(minutes) == cron


@pytest.mark.parametrize("minutes", ["45", "90", "0", "abc"])
def test_an_interval_no_cron_can_repeat_evenly_is_refused_naming_the_variable(minutes):
    with pytest.raises(SettingsError, match="REFRESH_INTERVAL_MINUTES"):
        Settings.from_env({"REFRESH_INTERVAL_MINUTES": minutes})


def test_the_default_schedule_refreshes_hourly():
    assert tenant_refresh_schedule.cron_schedule == "0 * * * *"
    assert tenant_refresh_schedule.job_name == "tenant_pipeline"


def test_the_schedule_refreshes_every_tenant_in_contiguous_ranges_of_50(instance):
    keys = [f"t{n:03d}" for n in range(120)]
    instance.add_dynamic_partitions(TENANTS, keys)
    tick = scheduled_requests(instance)
    assert ranges(tick.run_requests) == [("t000", "t049"), ("t050", "t099"), ("t100", "t119")]
    assert len({r.run_key for r in tick.run_requests}) == 3
    assert all(r.tags[TRIGGER_TAG] == "schedule" and r.partition_key is None for r in tick.run_requests)


def test_the_schedule_skips_without_tenants(instance):
    assert "no tenant partitions" in scheduled_requests(instance).skip_message


@pytest.mark.slow
def test_a_scheduled_range_run_materializes_every_tenant_of_the_range(app_env, instance, synth_dir):
    folders = sorted(str(p) for p in synth_dir.iterdir())
    assert CliRunner().invoke(main, ["tenants", "import", *folders]).exit_code == 0
    keys = instance.get_dynamic_partitions(TENANTS)
    [request] = scheduled_requests(instance).run_requests
    result = defs.resolve_job_def("tenant_pipeline").execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    assert instance.get_materialized_partitions(AssetKey("m365_snapshot")) == set(keys)
    run = instance.get_run_by_id(result.run_id)
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (keys[0], keys[-1])


def test_a_ui_backfill_of_200_tenants_is_four_runs_of_50(instance):
    """What the backfill daemon launches for a UI backfill of every tenant partition of every stage.

    No public API exposes the daemon's split, so this calls the function it calls
    (dagster 1.13.27, `_core/execution/asset_backfill.py`); the range runs it
    returns are the ones `test_a_scheduled_range_run_...` shows Dagster executes.
    `python -m mspbyte_dagster_tests.bench_sensor` runs a real one (GraphQL + daemon).
    """
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )
    from dagster._core.definitions.events import AssetKeyPartitionKey

    keys = [f"t{n:03d}" for n in range(200)]
    instance.add_dynamic_partitions(TENANTS, keys)
    assert defs.resolve_assets_def(AssetKey("m365_snapshot")).backfill_policy.max_partitions_per_run == RUN_BATCH
    requested = [AssetKeyPartitionKey(stage, key) for stage in STAGES for key in keys]
    with partition_loading_context(dynamic_partitions_store=instance):
        runs = build_run_requests_with_backfill_policies(requested, defs.resolve_asset_graph(), instance)
    assert ranges(runs) == [("t000", "t049"), ("t050", "t099"), ("t100", "t149"), ("t150", "t199")]
    assert all(set(run.asset_selection) == set(STAGES) for run in runs)
