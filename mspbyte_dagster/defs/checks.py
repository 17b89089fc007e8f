"""Per-tenant asset checks: logged per partition by the tenant loop, plus one summary per run."""

import warnings

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    PreviewWarning,
)

from mspbyte_dagster.defs.check_targets import latest_materializations
from mspbyte_dagster.defs.partitions import tenants_partitions
from mspbyte_dagster.lib.passes import FRESHNESS_CHECK, SOURCE_STAGES, TenantPass, guard_check

CHECKS = {
    "empty_sync_guard": (
        "m365_snapshot",
        "Users fell below half, or enabled CA policies to zero, against the last successful pass.",
    ),
    "finding_entities_exist": ("findings", "Every finding names an entity of the tenant's context."),
    "one_open_alert_per_fingerprint": ("alerts", "No two open alerts share a fingerprint."),
    FRESHNESS_CHECK: (
        "m365_snapshot",
        "Refreshed (a full successful pass) within twice REFRESH_INTERVAL_MINUTES: each full pass passes it, "
        "tenant_freshness_sensor fails it for a tenant that falls behind.",
    ),
    **{
        guard_check(integration): (stage, f"The {integration.name} empty-sync guard: a sudden drop holds this source.")
        for stage, integration in SOURCE_STAGES.items()
    },
}

with warnings.catch_warnings():
    # Partitioned check specs are "preview" (docs/benchmarks.md, Dagster notes); they are what makes one
    # result per tenant possible.
    warnings.simplefilter("ignore", PreviewWarning)
    CHECK_SPECS = [
        AssetCheckSpec(name, asset=asset, description=description, partitions_def=tenants_partitions, blocking=False)
        for name, (asset, description) in CHECKS.items()
    ]


def tenant_evaluations(
    instance: DagsterInstance, results: list[TenantPass], selected: set[str]
) -> list[AssetCheckEvaluation]:
    """The tenants' check results, each against the materialization it judged (its tenant's latest of the
    checked asset, looked up once per asset for all the tenants), so the UI shows it on the tenant's partition."""
    judged = [(r.tenant, name, outcome) for r in results for name, outcome in r.checks.items() if name in selected]
    tenants_of: dict[str, list[str]] = {}
    for tenant, name, _ in judged:
        tenants_of.setdefault(CHECKS[name][0], []).append(tenant)
    targets = {asset: latest_materializations(instance, asset, tenants) for asset, tenants in tenants_of.items()}
    return [
        AssetCheckEvaluation(
            asset_key=AssetKey(CHECKS[name][0]),
            check_name=name,
            passed=outcome.passed,
            partition=tenant,
            description=outcome.description,
            metadata=outcome.metadata,
            target_materialization_data=targets[CHECKS[name][0]].get(tenant),
        )
        for tenant, name, outcome in judged
    ]


def run_summaries(results: list[TenantPass], selected: set[str]) -> list[AssetCheckResult]:
    """One result per selected check for the whole run: which tenants failed it."""
    summaries = []
    for name in selected:
        checked = [r for r in results if name in r.checks]
        failed = sorted(r.tenant for r in checked if not r.checks[name].passed)
        summaries.append(
            AssetCheckResult(
                check_name=name,
                asset_key=CHECKS[name][0],
                passed=not failed,
                description=f"failed for {len(failed)} of {len(checked)} tenant(s)"
                if failed
                else f"{len(checked)} tenant(s) checked",
                metadata={"failed_tenants": failed},
            )
        )
    return summaries
