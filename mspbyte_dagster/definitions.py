"""The one Definitions object: every asset, job, sensor, schedule and resource. Connects to nothing."""

import warnings

from dagster import BetaWarning, Definitions, in_process_executor, with_source_code_references

from mspbyte_dagster.defs.assets import tenant_pipeline
from mspbyte_dagster.defs.jobs import tenant_pipeline_job
from mspbyte_dagster.defs.resources import resources_from_env
from mspbyte_dagster.defs.schedules import tenant_refresh_schedule
from mspbyte_dagster.defs.sensors import sync_event_sensor, tenant_registry_sensor

# Code references are beta (docs/benchmarks.md, Dagster notes); they are worth it, the warning at every
# load is not.
warnings.filterwarnings("ignore", category=BetaWarning)

defs = Definitions(
    assets=with_source_code_references([tenant_pipeline]),
    jobs=[tenant_pipeline_job],
    # UI materializations and backfills run in the implicit asset job: one process per run there too.
    executor=in_process_executor,
    sensors=[sync_event_sensor, tenant_registry_sensor],
    schedules=[tenant_refresh_schedule],
    resources=resources_from_env(),
)
