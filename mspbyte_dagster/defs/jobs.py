"""Jobs: `tenant_pipeline` runs every tenant stage for a range of tenants in one process."""

from dagster import AssetSelection, define_asset_job, in_process_executor

from mspbyte_dagster.defs.assets import tenant_pipeline

tenant_pipeline_job = define_asset_job(
    "tenant_pipeline",
    selection=AssetSelection.assets(tenant_pipeline),
    executor_def=in_process_executor,
    description="Every tenant stage, tenant by tenant, for a contiguous range of tenants.",
)
