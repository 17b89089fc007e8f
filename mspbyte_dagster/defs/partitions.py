"""Every tenant asset is partitioned by tenant key."""

from dagster import DynamicPartitionsDefinition

TENANTS = "tenants"
tenants_partitions = DynamicPartitionsDefinition(name=TENANTS)

# Dagster's run tags for a run over a range of partitions (one run, many tenants).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
