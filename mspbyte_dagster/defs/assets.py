"""`tenant_pipeline` assets: one op (`tenant_pass`), one asset per stage, looping tenant by tenant.

Separate steps could not isolate a failing tenant (one failed step stops every
tenant of the run downstream), so the loop is inside one op and each tenant's
stages are reported as they are done.
"""

from collections.abc import Callable

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MetadataValue,
    ResourceParam,
    TableColumn,
    TableRecord,
    TableSchema,
    multi_asset,
)
from dagster_prometheus import PrometheusResource
from sqlalchemy import Engine

from mspbyte_dagster.defs.checks import CHECK_SPECS, run_summaries, tenant_evaluations
from mspbyte_dagster.defs.partitions import SOURCES_TAG, tenants_partitions
from mspbyte_dagster.defs.resources import (
    DatabaseResource,
    FeatureFlagsResource,
    GraphResource,
    SourcesResource,
)
from mspbyte_dagster.lib.adapters.registry import DEFAULT
from mspbyte_dagster.lib.flags import FeatureFlagManager, run_tags
from mspbyte_dagster.lib.metrics.push import PUSH_JOB, push_pass_figures
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster.lib.passes import ASSETS, SOURCE_STAGES, PassOptions, TenantPass
from mspbyte_dagster.lib.pipeline import run_tenant_pass
from mspbyte_dagster.settings import current_settings

STAGE_DESCRIPTIONS = {
    "m365_snapshot": (
        "The tenant's current Microsoft 365 snapshot (Graph-shaped JSON), with counts per file. Partitions are "
        "the tenants registered with `mspbyte tenants import` or `mspbyte tenants add`: a partition added in "
        "the UI is no tenant (its run fails saying so, and tenant_registry_sensor removes it)."
    ),
    **{
        stage: f"The tenant's current {integration.name} snapshot, when it has a data source of it, with its own guard."
        for stage, integration in SOURCE_STAGES.items()
    },
    "entities": "Every data source's entities (Microsoft 365's identities, groups, roles, CA policies, SKUs, the "
    "tenant itself, and the other integrations'), upserted and swept.",
    "relationships": (
        "Read from the entities: member_of (transitive), assigned_role (direct and through groups), "
        "eligible_role (PIM), applies_to (or, for a policy that applies to most users, applies_to_all and "
        "does_not_apply_to), has_license."
    ),
    "tenant_context": (
        "The entities and their relationships, read in constant queries into O(1) lookups both ways: "
        "what the analysis needs."
    ),
    "findings": "The rules of docs/rules.md over the context, with the rules evaluated in this pass.",
    "alerts": "One alert per fingerprint: created, updated, suppressed, reopened and resolved by the lifecycle.",
    "tenant_report": (
        "The report an MSP sends its customer: posture, open alerts by severity and type, what changed since "
        "the previous report, open alerts over the last passes. HTML, CSV and XLSX, kept in the app database "
        "(`mspbyte report --tenant ID --out DIR` writes them); built by job tenant_reports, daily."
    ),
    "comparison_report": "Legacy vs new path on the same data (comparison_mode): differences and performance.",
}
# Each arrow is a read: the context loader reads the entities and the relationships.
DEPS = {
    **dict.fromkeys(SOURCE_STAGES, []),
    "entities": [STAGES[0], *SOURCE_STAGES],
    "tenant_context": ["entities", "relationships"],
    "tenant_report": ["alerts"],
    "comparison_report": ["alerts"],
}
STAGE_SPECS = [
    AssetSpec(
        stage,
        description=STAGE_DESCRIPTIONS[stage],
        deps=DEPS.get(stage, [ASSETS[index - 1]] if index else []),
        skippable=True,
        partitions_def=tenants_partitions,
        group_name="tenant",
        kinds={"python"},
    )
    for index, stage in enumerate(ASSETS)
]


def _table(rows: list[dict]) -> MetadataValue:
    """Rows of like dicts as a table with a schema (the open alerts: id, severity, type, entity, ...)."""
    columns = list(rows[0]) if rows else ["id", "severity", "type", "entity", "since", "status"]
    kinds = {name: "int" if isinstance(rows[0][name], int) else "string" for name in columns} if rows else {}
    return MetadataValue.table(
        records=[TableRecord(row) for row in rows],
        schema=TableSchema(columns=[TableColumn(name, kinds.get(name, "string")) for name in columns]),
    )


def _metadata_value(name: str, value):
    if name.endswith("_markdown"):
        return MetadataValue.md(value)
    if name.endswith("_table"):
        return _table(value)
    if isinstance(value, bool):
        return MetadataValue.bool(value)
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return value
    return MetadataValue.json(value)


def stage_metadata(tenant: str, figures: dict) -> dict:
    """Per-tenant figures as Dagster metadata, naming the tenant they are for: numbers stay numbers,
    Markdown renders, tables are tables, the rest is JSON."""
    shown = {
        name.removesuffix("_markdown").removesuffix("_table"): _metadata_value(name, v) for name, v in figures.items()
    }
    return {"tenant": tenant} | shown


def pass_options(
    run_id: str,
    flags: FeatureFlagManager,
    refresh_snapshot: Callable[[Engine, str], dict | None] | None = None,
    refresh_sources: Callable[[Engine, str], dict[str, dict]] | None = None,
) -> PassOptions:
    return current_settings().pass_options(
        run_id=run_id, refresh_snapshot=refresh_snapshot, refresh_sources=refresh_sources, flags=flags
    )


def push_figures(
    context: AssetExecutionContext, prometheus: PrometheusResource | None, results: list[TenantPass]
) -> None:
    """With PROMETHEUS_PUSHGATEWAY_URL set, each tenant's latest pass also goes to the Pushgateway
    (never fatal; the URL stays out of the log, it may hold credentials)."""
    if prometheus is None:
        return
    try:
        push_pass_figures(
            prometheus.registry, lambda key: prometheus.push_to_gateway(job=PUSH_JOB, grouping_key=key), results
        )
    except OSError as error:
        context.log.warning(f"The Pushgateway did not take the run's figures: {error}")


@multi_asset(
    name="tenant_pass",
    specs=STAGE_SPECS,
    check_specs=CHECK_SPECS,
    can_subset=True,
    partitions_def=tenants_partitions,
    backfill_policy=BackfillPolicy.multi_run(50),
)
def tenant_pipeline(
    context: AssetExecutionContext,
    database: DatabaseResource,
    feature_flags: FeatureFlagsResource,
    graph: GraphResource,
    sources: SourcesResource,
    prometheus: ResourceParam[PrometheusResource | None],
):
    engine = database.engine()
    # Read once: a flag changed while this run goes on changes the next run only.
    flags = feature_flags.snapshot(engine)
    context.instance.add_run_tags(context.run.run_id, run_tags(flags))
    # a sync event's run refreshes the data sources that synced; any other run, every source read from an API
    synced = context.run.tags.get(SOURCES_TAG)
    refreshed = set(synced.split(",")) if synced else None
    options = pass_options(
        context.run.run_id,
        flags,
        graph.snapshot_refresher() if refreshed is None or DEFAULT.source_id in refreshed else None,
        sources.refresher(refreshed),
    )
    selected = tuple(s for s in ASSETS if context.asset_key_for_output(s) in context.selected_asset_keys)
    checks = {key.name for key in context.selected_asset_check_keys}
    results: list[TenantPass] = []
    try:
        for tenant in context.partition_keys:
            result = run_tenant_pass(engine, tenant, selected, options)
            results.append(result)
            if result.status != "succeeded":  # a success shows as the stages' materializations and the pass's log
                context.log.warning(
                    f"tenant {tenant}: {result.status}" + (f" ({result.reason})" if result.reason else "")
                )
            for stage, figures in result.stages.items():
                yield AssetMaterialization(asset_key=stage, partition=tenant, metadata=stage_metadata(tenant, figures))
    finally:  # the checks of the tenants that passed, even when the run stops: their targets looked up together
        for evaluation in tenant_evaluations(context.instance, results, checks):
            context.log_event(evaluation)
    yield from run_summaries(results, checks)
    push_figures(context, prometheus, results)
    failed = {r.tenant: r.reason for r in results if r.status == "failed"}
    held = {r.tenant: r.reason for r in results if r.status == "held"}
    if failed or held:
        raise not_passed(len(results), failed, held)


def not_passed(total: int, failed: dict, held: dict) -> Failure:
    """Why the run is not green: failed and held tenants named apart."""
    parts = [f"{len(failed)} failed: {', '.join(failed)}"] if failed else []
    if held:
        parts.append(
            f"{len(held)} held by the empty-sync guard: {', '.join(held)} (nothing written for them; "
            "`mspbyte tenants accept-drop TENANT` lets a real drop through)"
        )
    return Failure(
        description=f"{len(failed) + len(held)} of {total} tenant(s) did not pass: " + "; ".join(parts),
        metadata={"failed_tenants": MetadataValue.json(failed), "held_tenants": MetadataValue.json(held)},
    )
