"""The one private Dagster import: pinned, so an upgrade that moves it fails here, not in the UI."""

from pathlib import Path

from dagster import AssetCheckEvaluation, AssetKey

import mspbyte_dagster
from mspbyte_dagster.defs.check_targets import AssetCheckEvaluationTargetMaterializationData

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
