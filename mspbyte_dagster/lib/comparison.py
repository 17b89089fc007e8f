"""ComparisonMode: what the legacy and the new path made of the same tenant, side by side.

Each path's outputs (entities it loaded, edges, findings, alert actions,
statements and time) are captured as plain sets; the report says what one path
has and the other lacks. The shadow path runs inside a rolled-back SAVEPOINT
(`shadow_outputs`), so a comparison writes exactly what a single pass writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, select
from sqlalchemy.orm import aliased

from mspbyte_dagster.lib.alerts import AlertOutcome
from mspbyte_dagster.lib.context import TenantContext
from mspbyte_dagster.lib.model import Analysis
from mspbyte_dagster.lib.passes import PATH_STAGES, PassState
from mspbyte_dagster.lib.shown import markdown_cell
from mspbyte_dagster.lib.stages import run_stage
from mspbyte_dagster.lib.store.query_stats import QueryStats
from mspbyte_dagster.lib.store.schema import entities, entity_relationships

SHOWN = 50  # items listed per difference; counts are always complete


@dataclass
class PathOutputs:
    paths: dict[str, str]
    entities: set[str] = field(default_factory=set)  # "type:external id"
    edges: set[str] = field(default_factory=set)  # "type:parent:child"
    findings: set[str] = field(default_factory=set)  # "alert type:entity type:entity id:sku:severity"
    alert_actions: set[str] = field(default_factory=set)  # "action:fingerprint"
    queries: int = 0
    milliseconds: float = 0.0


def path_outputs(
    conn: Connection, context: TenantContext, analysis: Analysis, outcome: AlertOutcome, paths: dict[str, str]
) -> PathOutputs:
    """Capture a path's results while its writes are still visible (before a savepoint rolls back)."""
    parent, child = aliased(entities), aliased(entities)
    edges = conn.execute(
        select(
            entity_relationships.c.relationship_type, parent.c.entity_type, parent.c.external_id, child.c.external_id
        )
        .join(parent, parent.c.id == entity_relationships.c.parent_id)
        .join(child, child.c.id == entity_relationships.c.child_id)
        .where(entity_relationships.c.tenant == context.tenant)
    )
    return PathOutputs(
        paths=dict(paths),
        entities={f"{t}:{e}" for t, e in context.entity_ids},
        edges={f"{kind}:{parent_type}/{parent_id}:{child_id}" for kind, parent_type, parent_id, child_id in edges},
        findings={f"{':'.join(f.fingerprint)}:{f.severity}" for f in analysis.findings},
        alert_actions={f"{action}:{fingerprint}" for action, fingerprint in outcome.actions},
    )


def _difference(legacy: set[str], new: set[str]) -> dict:
    missing, extra = sorted(legacy - new), sorted(new - legacy)
    return {
        "legacy": len(legacy),
        "new": len(new),
        "match": not missing and not extra,
        "missing_in_new": missing[:SHOWN],
        "extra_in_new": extra[:SHOWN],
        "missing_count": len(missing),
        "extra_count": len(extra),
    }


def compare(tenant: str, legacy: PathOutputs, new: PathOutputs, new_path_only: tuple[str, ...] = ()) -> dict:
    """`new_path_only`: the tenant's data sources of integrations the old system never had (both paths
    run their new code: their entities and findings are the same on both sides by construction)."""
    sections = {
        name: _difference(getattr(legacy, name), getattr(new, name))
        for name in ("entities", "edges", "findings", "alert_actions")
    }
    performance = {
        "legacy": {"queries": legacy.queries, "milliseconds": round(legacy.milliseconds)},
        "new": {"queries": new.queries, "milliseconds": round(new.milliseconds)},
        "ratio": {
            "queries": round(legacy.queries / max(new.queries, 1), 1),
            "milliseconds": round(legacy.milliseconds / max(new.milliseconds, 1e-3), 1),
        },
    }
    report = {
        "tenant": tenant,
        "has_discrepancies": not all(section["match"] for section in sections.values()),
        "paths": {"legacy": legacy.paths, "new": new.paths},
        **sections,
        "performance": performance,
        "new_path_only": list(new_path_only),
    }
    report["report_markdown"] = report_markdown(report)
    return report


def report_markdown(report: dict) -> str:
    verdict = "**discrepancies found**" if report["has_discrepancies"] else "no discrepancy"
    lines = [
        f"Comparison for `{report['tenant']}`: {verdict}",
        "",
        "| | legacy | new | missing in new | extra in new |",
        "|---|---|---|---|---|",
    ]
    for name in ("entities", "edges", "findings", "alert_actions"):
        section = report[name]
        lines.append(
            f"| {name} | {section['legacy']} | {section['new']} | {section['missing_count']} "
            f"| {section['extra_count']} |"
        )
    perf = report["performance"]
    if report["new_path_only"]:
        lines += ["", f"New path only (no legacy pattern): {', '.join(report['new_path_only'])}."]
    lines += [
        "",
        "| | queries | ms |",
        "|---|---|---|",
        f"| legacy | {perf['legacy']['queries']} | {perf['legacy']['milliseconds']} |",
        f"| new | {perf['new']['queries']} | {perf['new']['milliseconds']} |",
        f"| ratio | {perf['ratio']['queries']}x | {perf['ratio']['milliseconds']}x |",
    ]
    for name in ("entities", "edges", "findings", "alert_actions"):
        for label in ("missing_in_new", "extra_in_new"):
            items = report[name][label]
            if items:
                shown = ", ".join(markdown_cell(item) for item in items[:10])
                lines.append(f"- {name} {label.replace('_', ' ')}: {shown}")
    return "\n".join(lines)


def shadow_outputs(state: PassState, stats: QueryStats) -> PathOutputs:
    """The path the flags did not select, run inside a SAVEPOINT that is rolled back."""
    kind = "legacy" if "new" in state.paths.values() else "new"
    shadow = replace(
        state,
        paths=dict.fromkeys(PATH_STAGES, kind),
        context=None,
        analysis=None,
        alert_outcome=None,
        checks={},
    )
    with state.conn.begin_nested() as savepoint:
        figures = [run_stage(shadow, stage, stats) for stage in PATH_STAGES]
        outputs = path_outputs(state.conn, shadow.context, shadow.analysis, shadow.alert_outcome, shadow.paths)
        savepoint.rollback()
    outputs.queries = sum(f["queries"] for f in figures)
    outputs.milliseconds = sum(f["milliseconds"] for f in figures)
    return outputs


def comparison_of(state: PassState, shadow: PathOutputs, done: dict[str, dict]) -> dict:
    primary = path_outputs(state.conn, state.context, state.analysis, state.alert_outcome, state.paths)
    primary.queries = sum(done[s]["queries"] for s in PATH_STAGES)
    primary.milliseconds = sum(done[s]["milliseconds"] for s in PATH_STAGES)
    legacy, new = (shadow, primary) if "legacy" in shadow.paths.values() else (primary, shadow)
    return compare(state.tenant, legacy, new, tuple(source.integration.name for source in state.sources.values()))
