"""`tenant_pipeline`: one op, one asset per stage, looping tenant by tenant."""

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MetadataValue,
    multi_asset,
)

from mspbyte_dagster.defs.partitions import tenants_partitions
from mspbyte_dagster.defs.resources import DatabaseResource
from mspbyte_dagster.lib.pipeline import STAGES, run_tenant_pass

STAGE_DESCRIPTIONS = {
    "m365_snapshot": "The tenant's current Microsoft 365 snapshot (Graph-shaped JSON), with counts per file.",
}
STAGE_SPECS = [
    AssetSpec(
        stage,
        description=STAGE_DESCRIPTIONS[stage],
        deps=[STAGES[index - 1]] if index else [],
        skippable=True,
        partitions_def=tenants_partitions,
        group_name="tenant",
        kinds={"python"},
    )
    for index, stage in enumerate(STAGES)
]


def stage_metadata(figures: dict) -> dict:
    """Per-tenant figures as Dagster metadata: numbers stay numbers, the rest is JSON."""
    metadata = {}
    for name, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            metadata[name] = MetadataValue.json(value)
        else:
            metadata[name] = value
    return metadata


@multi_asset(
    name="tenant_pass",
    specs=STAGE_SPECS,
    can_subset=True,
    partitions_def=tenants_partitions,
    backfill_policy=BackfillPolicy.multi_run(50),
)
def tenant_pipeline(context: AssetExecutionContext, database: DatabaseResource):
    engine = database.engine()
    selected = tuple(stage for stage in STAGES if context.asset_key_for_output(stage) in context.selected_asset_keys)
    failed = {}
    for tenant in context.partition_keys:
        try:
            result = run_tenant_pass(engine, tenant, selected)
        except Exception as error:  # one tenant's failure must not stop the others
            context.log.error(f"tenant {tenant} failed: {error}")
            failed[tenant] = str(error)
            continue
        for stage, figures in result.stages.items():
            yield AssetMaterialization(asset_key=stage, partition=tenant, metadata=stage_metadata(figures))
    if failed:
        raise Failure(
            description=f"{len(failed)} tenant(s) failed: {', '.join(failed)}",
            metadata={"failed_tenants": MetadataValue.json(failed)},
        )
