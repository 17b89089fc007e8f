"""The one private Dagster import: pinned, so an upgrade that moves it fails here, not in the UI."""

from pathlib import Path

from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, AssetRecordsFilter, DagsterInstance

import mspbyte_dagster
from mspbyte_dagster.defs.check_targets import AssetCheckEvaluationTargetMaterializationData, latest_materializations

PACKAGE = Path(mspbyte_dagster.__file__).parent


def test_the_target_type_is_where_the_project_imports_it_and_evaluations_take_it():
    target = AssetCheckEvaluationTargetMaterializationData(storage_id=7, run_id="r", timestamp=1.0)
    evaluation = AssetCheckEvaluation(
        asset_key=AssetKey("m365_snapshot"),
        check_name="empty_sync_guard",
        passed=False,
        partition="contoso",
        target_materialization_data=target,
    )
    assert evaluation.target_materialization_data.storage_id == 7


def test_no_other_module_imports_dagster_internals():
    private = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "from dagster._" in path.read_text() or "import dagster._" in path.read_text()
    )
    assert private == ["defs/check_targets.py"]


def test_each_partition_gets_its_own_latest_materialization_however_far_back_it_is():
    """Looked up for many partitions at once, a page at a time: one materialized long ago is found
    behind the newer records of the others, and one never materialized has no target."""
    instance = DagsterInstance.ephemeral()
    for partition in ("old", "a", "b", "a", "b", "other"):
        instance.report_runless_asset_event(AssetMaterialization("alerts", partition=partition))
    found = latest_materializations(instance, "alerts", ["a", "b", "old", "never"])
    assert sorted(found) == ["a", "b", "old"]
    for partition, target in found.items():
        [newest] = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("alerts"), asset_partitions=[partition]), limit=1
        ).records
        assert target.storage_id == newest.storage_id
