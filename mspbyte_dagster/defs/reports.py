"""The fleet view: `fleet_posture`, requested once tenant runs settle (not
once per 50-tenant run), in its own job."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetExecutionContext,
    DefaultSensorStatus,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from mspbyte_dagster.defs.jobs import run_tags
from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.lib.store.ledger import settled_mark
from mspbyte_dagster.settings import current_settings

QUIET = timedelta(minutes=2)  # no pass for this long (and none running): the tenant runs have settled


@asset(
    group_name="fleet",
    kinds={"pandas", "parquet"},
    description=(
        "One row per tenant: posture figures of its latest full pass and its open alerts by severity, as "
        "Parquet and CSV (kept in the app database; `mspbyte report --fleet --out DIR` writes them), with "
        "the tenants most in need of attention in its metadata."
    ),
)
def fleet_posture(context: AssetExecutionContext, database: DatabaseResource):
    from mspbyte_dagster.lib.reports.fleet import build_fleet_posture, most_in_need  # pandas: 80 MB, only here

    with database.engine().begin() as conn:
        frame, files, export_id = build_fleet_posture(conn, datetime.now(UTC))
    context.add_output_metadata(
        {
            "tenants": len(frame),
            "export_id": export_id,
            "parquet_kb": round(len(files["parquet"]) / 1024, 1),
            "most_in_need": MetadataValue.md(most_in_need(frame)),
        }
    )


fleet_posture_job = define_asset_job(
    "fleet_posture_job",
    selection=[fleet_posture],
    executor_def=in_process_executor,
    tags=run_tags(),
    description="The fleet view, after tenant runs settle.",
)


@sensor(
    name="fleet_posture_sensor",
    job=fleet_posture_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests fleet_posture once tenant passes have settled (none running, none in the last 2 minutes).",
)
def fleet_posture_sensor(context: SensorEvaluationContext, database: DatabaseResource):
    running_since = timedelta(milliseconds=current_settings().job_timeout_ms)
    with database.engine().connect() as conn:
        mark = settled_mark(conn, datetime.now(UTC), QUIET, running_since)
    if mark is None:
        return SkipReason("tenant passes are running or finished less than 2 minutes ago")
    if context.cursor and int(context.cursor) >= mark:
        return SkipReason(f"fleet_posture is up to date with pass {mark}")
    context.update_cursor(str(mark))
    return RunRequest(run_key=f"fleet:{mark}")
