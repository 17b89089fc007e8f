"""The migration guide's getSummary(): the pipeline's figures at a glance, from the same durable
counts as /metrics (so the two always agree)."""

from __future__ import annotations

from mspbyte_dagster.lib.metrics.collector import EXECUTION_STATUS, NOT_RUN
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster.lib.store.metric_totals import Figures


def _ratio(part: float, whole: float, digits: int) -> float | None:
    return round(part / whole, digits) if whole else None


def pipeline_summary(figures: Figures) -> dict:
    """Total and slow queries, average duration of the passes that ran, the success rate, per stage."""
    executions = {label: int(figures["passes", status]) for status, label in EXECUTION_STATUS.items()}
    ran = sum(executions.values())
    duration_ms = sum(figures["duration_ms", status] for status in EXECUTION_STATUS)
    queries, slow = int(figures["queries"]), int(figures["slow_queries"])
    return {
        "total_queries": queries,
        "slow_query_count": slow,
        "slow_query_share": _ratio(slow, queries, 4),
        "average_pipeline_duration_ms": _ratio(duration_ms, ran, 1),
        "executions": executions,
        "success_rate": _ratio(executions["success"], ran, 4),
        "passes_not_run": {reason: int(figures["passes", reason]) for reason in NOT_RUN},
        "by_stage": {
            stage: {
                "executions": int(figures["stage_runs", stage]),
                "average_ms": _ratio(figures["stage_ms", stage], figures["stage_runs", stage], 1),
                "queries": int(figures["stage_queries", stage]),
            }
            for stage in STAGES
        },
    }
