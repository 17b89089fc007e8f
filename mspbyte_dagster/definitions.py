"""The one Definitions object: every asset, job, sensor, schedule and resource. Connects to nothing."""

import warnings

from dagster import BetaWarning, Definitions, in_process_executor, with_source_code_references

from mspbyte_dagster.defs.assets import tenant_pipeline
from mspbyte_dagster.defs.jobs import tenant_pipeline_job, tenant_reports_job
from mspbyte_dagster.defs.notifications import notification_delivery, notification_outbox_sensor
from mspbyte_dagster.defs.reports import fleet_posture, fleet_posture_job, fleet_posture_sensor
from mspbyte_dagster.defs.resources import resources_from_env
from mspbyte_dagster.defs.run_outcomes import pass_outcomes_sensor
from mspbyte_dagster.defs.schedules import tenant_refresh_schedule, tenant_report_schedule
from mspbyte_dagster.defs.sensors import sync_event_sensor, tenant_freshness_sensor, tenant_registry_sensor
from mspbyte_dagster.settings import apply_log_level, current_settings

# Code references are beta (docs/benchmarks.md, Dagster notes); they are worth it, the warning at every
# load is not.
warnings.filterwarnings("ignore", category=BetaWarning)
# Runs launched by the daemon, the sensors and the UI log at LOG_LEVEL too, not only the CLI.
apply_log_level(current_settings().log_level)

defs = Definitions(
    assets=with_source_code_references([tenant_pipeline, fleet_posture]),
    jobs=[tenant_pipeline_job, tenant_reports_job, fleet_posture_job, notification_delivery],
    # UI materializations and backfills run in the implicit asset job: one process per run there too.
    executor=in_process_executor,
    sensors=[
        sync_event_sensor,
        tenant_registry_sensor,
        tenant_freshness_sensor,
        notification_outbox_sensor,
        fleet_posture_sensor,
        pass_outcomes_sensor,
    ],
    schedules=[tenant_refresh_schedule, tenant_report_schedule],
    resources=resources_from_env(),
)
