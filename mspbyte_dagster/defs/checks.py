"""Per-tenant asset checks, logged per partition by the tenant loop, plus one summary per run."""

import warnings

from dagster import AssetCheckEvaluation, AssetCheckResult, AssetCheckSpec, AssetKey, PreviewWarning

from mspbyte_dagster.defs.partitions import tenants_partitions
from mspbyte_dagster.lib.pipeline import TenantPass

with warnings.catch_warnings():
    # Partitioned check specs are "preview" in 1.13; they are what makes a result per tenant possible.
    warnings.simplefilter("ignore", PreviewWarning)
    EMPTY_SYNC_GUARD = AssetCheckSpec(
        "empty_sync_guard",
        asset="m365_snapshot",
        description="Users fell below half, or enabled CA policies to zero, against the last successful pass.",
        partitions_def=tenants_partitions,
        blocking=False,
    )


def guard_evaluation(result: TenantPass) -> AssetCheckEvaluation:
    guard = result.guard
    return AssetCheckEvaluation(
        asset_key=AssetKey("m365_snapshot"),
        check_name=EMPTY_SYNC_GUARD.name,
        passed=not guard.get("held"),
        partition=result.tenant,
        description=guard.get("held") or "no sudden drop against the last successful pass",
        metadata={"counts": guard.get("counts"), "baseline": guard.get("baseline")},
    )


def guard_summary(results: list[TenantPass]) -> AssetCheckResult:
    held = {r.tenant: r.reason for r in results if r.status == "held"}
    return AssetCheckResult(
        check_name=EMPTY_SYNC_GUARD.name,
        asset_key="m365_snapshot",
        passed=not held,
        description=f"{len(held)} of {len(results)} tenant(s) held" if held else f"{len(results)} tenant(s) checked",
        metadata={"held_tenants": held},
    )
