"""Jobs: `tenant_pipeline` runs every tenant stage for a range of tenants in one process; `tenant_reports`\nbuilds their customer reports."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from mspbyte_dagster.defs.assets import tenant_pipeline
from mspbyte_dagster.lib.passes import COMPARISON, REPORT
from mspbyte_dagster.settings import current_settings


def run_tags() -> dict[str, str]:
    """Every job's: JOB_TIMEOUT_MS as Dagster's run time limit (run monitoring stops and fails a longer
    run, or one whose worker died)."""
    return {"dagster/max_runtime": str(max(1, current_settings().job_timeout_ms // 1000))}


tenant_pipeline_job = define_asset_job(
    "tenant_pipeline",
    # comparison_report is materialized by the tenant passes that compare (comparison_mode), outside
    # the selection: a report that is off is never "Missing" on the job's partitions. tenant_report has
    # its own job and schedule: a pass of the pipeline builds no report.
    selection=AssetSelection.assets(tenant_pipeline) - AssetSelection.assets(COMPARISON, REPORT),
    executor_def=in_process_executor,
    tags=run_tags(),
    description="Every tenant stage, tenant by tenant, for a contiguous range of tenants.",
)

tenant_reports_job = define_asset_job(
    "tenant_reports",
    selection=AssetSelection.assets(REPORT),
    executor_def=in_process_executor,
    tags=run_tags(),
    description="The customer report of each tenant of a range (reads the database; writes only the report).",
)
