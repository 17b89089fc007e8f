"""Schedules: a periodic refresh of every tenant and a daily report of each, in runs of contiguous tenant\nranges."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleEvaluationContext, SkipReason, schedule

from mspbyte_dagster.defs.jobs import tenant_pipeline_job, tenant_reports_job
from mspbyte_dagster.defs.partitions import TENANTS, range_run_requests
from mspbyte_dagster.settings import current_settings


def refresh_cron(minutes: int) -> str:
    """Cron for an interval that divides an hour or a day (settings.py refuses any other)."""
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"


@schedule(
    name="tenant_refresh_schedule",
    cron_schedule=refresh_cron(current_settings().refresh_interval_minutes),
    job=tenant_pipeline_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every tenant, every REFRESH_INTERVAL_MINUTES, in runs of up to 50 contiguous tenants.",
)
def tenant_refresh_schedule(context: ScheduleEvaluationContext):
    return every_tenant(context, "refresh")


@schedule(
    name="tenant_report_schedule",
    cron_schedule="0 6 * * *",
    job=tenant_reports_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every tenant's customer report, daily at 06:00 UTC, in runs of up to 50 contiguous tenants.",
)
def tenant_report_schedule(context: ScheduleEvaluationContext):
    return every_tenant(context, "report")


def every_tenant(context: ScheduleEvaluationContext, run_key: str):
    """Runs over every tenant in contiguous ranges. The partitions, not the app database:
    tenant_registry_sensor keeps them equal, and a schedule touches no service."""
    tenants = context.instance.get_dynamic_partitions(TENANTS)
    if not tenants:
        return SkipReason("no tenant partitions yet: register tenants (`mspbyte tenants import`)")
    return range_run_requests(tenants, tenants, "schedule", run_key)
