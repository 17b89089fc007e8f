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


def latest_materializations(
    instance: DagsterInstance, asset: str, partitions: list[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each partition's latest materialization of `asset`, as a check evaluation's target (a partition never
    materialized has none). Newest first, a page at a time: after a run, its tenants' records are the first
    page, so a range of 50 tenants costs one query, not 50."""
    partitions = list(dict.fromkeys(partitions))  # a tenant judged by several checks of the asset counts once
    found: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    wanted = AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=partitions)
    cursor = None
    while len(found) < len(partitions):
        page = instance.fetch_materializations(wanted, limit=len(partitions), cursor=cursor)
        for record in page.records:
            found.setdefault(
                record.partition_key,
                AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                ),
            )
        if not page.has_more:
            break
        cursor = page.cursor
    return found
