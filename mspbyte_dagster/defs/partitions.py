"""Every tenant asset is partitioned by tenant key."""

from dagster import DynamicPartitionsDefinition, RunRequest

from mspbyte_dagster.lib.batching import tenant_ranges

TENANTS = "tenants"
tenants_partitions = DynamicPartitionsDefinition(name=TENANTS)

# Dagster's run tags for a run over a range of partitions (one run, many tenants).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Ours: what started a run, and the one tenant of a sync-event run (dagster.yaml limits runs per tenant).
TRIGGER_TAG = "mspbyte/trigger"
PROCESS_TAG = "mspbyte/process"  # host:pid of an `mspbyte run`, so the next one can close a killed one's run
TENANT_TAG = "mspbyte/tenant"
SOURCES_TAG = "mspbyte/sources"  # a sync-event run: the data sources to refresh (the others keep their snapshot)


def range_tags(keys: list[str], trigger: str) -> dict[str, str]:
    """Tags of one run over a contiguous range of tenants."""
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1], TRIGGER_TAG: trigger}


def range_run_requests(order: list[str], chosen: list[str], trigger: str, run_key: str) -> list[RunRequest]:
    """One request per contiguous range of the chosen tenants, keyed `<run_key>:<first>..<last>`."""
    return [
        RunRequest(run_key=f"{run_key}:{keys[0]}..{keys[-1]}", tags=range_tags(keys, trigger))
        for keys in tenant_ranges(order, chosen)
    ]
