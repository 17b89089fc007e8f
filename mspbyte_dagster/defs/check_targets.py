"""Which materialization a per-tenant check evaluation is about.

Dagster 1.13 shows a partitioned check's result on a partition only when the evaluation names that
partition's latest materialization as its target; the type that names it is not exported by
`dagster`. This module is the one place the project imports from `dagster._core`, and
`test_check_targets` fails on an upgrade that moves it.
"""

from __future__ import annotations

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)


def latest_materialization(
    instance: DagsterInstance, asset: str, partition: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The partition's latest materialization of `asset`, as a check evaluation's target."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp
    )
