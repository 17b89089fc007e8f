"""Prometheus metrics of the pipeline, read from the app database on every scrape.

The old exporter kept capped in-memory lists, so its counters went down when
records aged out [k15]. Here every counter is a sum over durable rows: the
pipeline ledger (one row per tenant pass) and alert_events, plus the durable
totals that retention and offboarding leave behind when they delete rows
(lib/store/metric_totals.py). A ledger row counts once its pass has ended, and
an ended row never changes, so a counter never goes down, across scrapes,
restarts and pruning alike; any number of exporters agree.

Cheap scrapes: the passes fold rows older than a day into the totals (about
once an hour), so a scrape aggregates only the rows of about the last day, in
SQL, in one consistent read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from mspbyte_dagster.lib.alerts import ACTIONS
from mspbyte_dagster.lib.flags import FeatureFlagManager
from mspbyte_dagster.lib.model import SEVERITIES, STAGES
from mspbyte_dagster.lib.store.metric_totals import DURATION_BUCKETS, Figures, current_figures, latest_durations
from mspbyte_dagster.lib.store.schema import alerts, tenants

log = logging.getLogger(__name__)

# How a tenant pass ends (lib/pipeline.py); the ledger also holds `tenants accept-drop` rows.
# Known statuses are exported at 0 before their first row, so rate() has a start.
RUN_STATUSES = ("succeeded", "failed", "held", "skipped")
# A pass that ran is an execution, named as the migration guide queries it; one the guard held, another
# run's lease skipped or an operator accepted is not, so it neither raises nor lowers the success rate.
EXECUTION_STATUS = {"succeeded": "success", "failed": "failure"}
NOT_RUN = ("held", "skipped", "accepted_drop")
PASS_STATUSES = (*RUN_STATUSES, "accepted_drop")


@contextmanager
def consistent_read(engine: Engine) -> Iterator[Connection]:
    """One snapshot of the database for a whole scrape: a prune committing between two of its
    statements must not make a row count twice or not at all."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:  # autocommit on this engine: BEGIN by hand, a deferred (read) one
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ROLLBACK")
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        yield conn


# --- the collector ---------------------------------------------------------------------------------


def _counter(name: str, documentation: str, label: str | None, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label] if label else None)
    for key, value in values.items():
        family.add_metric([key] if label else [], value)
    return family


def _gauge(name: str, documentation: str, label: str | None, values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label] if label else None)
    for key, value in values.items():
        family.add_metric([key] if label else [], value)
    return family


def _by(figures: Figures, name: str, known: Iterable[str]) -> dict[str, float]:
    """One labelled figure, every known label present (0 before its first row) and any other seen."""
    seen = [key[1] for key in figures if key[0] == name]
    return {label: figures[name, label] for label in dict.fromkeys([*known, *seen])}


class PipelineCollector(Collector):
    """The pipeline's figures for Prometheus, recomputed from the app database at each scrape."""

    def __init__(self, engine: Engine, flags: Callable[[], FeatureFlagManager]):
        self._engine, self._flags = engine, flags
        self._started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "mspbyte_uptime_seconds",
            "Seconds since this exporter started.",
            None,
            {None: time.monotonic() - self._started},
        )
        try:
            with consistent_read(self._engine) as conn:
                figures = current_figures(conn)
                ledger, events = figures["ledger"], figures["alert_events"]
                open_alerts = dict(
                    conn.execute(
                        select(alerts.c.severity, func.count())
                        .where(alerts.c.status == "active")
                        .group_by(alerts.c.severity)
                    ).all()
                )
                tenant_count = conn.execute(select(func.count()).select_from(tenants)).scalar_one()
                durations = latest_durations(conn)
            flags = self._flags()
        except SQLAlchemyError as error:
            log.warning("metrics: the app database did not answer (%s)", type(error).__name__)
            yield _gauge("mspbyte_database_up", "1 when the app database answered this scrape.", None, {None: 0})
            return
        yield _gauge("mspbyte_database_up", "1 when the app database answered this scrape.", None, {None: 1})
        yield from self._ledger_metrics(ledger)
        yield _gauge(
            "mspbyte_pipeline_duration_ms",
            "Milliseconds of each tenant's latest pass that ran (of about the last day).",
            "tenant",
            durations,
        )
        yield _counter(
            "mspbyte_alerts_total",
            "Alert actions taken (alert_events rows), by action.",
            "action",
            _by(events, "alerts", ACTIONS),
        )
        yield _gauge(
            "mspbyte_alerts_open",
            "Alerts with status active, by severity.",
            "severity",
            {s: open_alerts.get(s, 0) for s in dict.fromkeys([*SEVERITIES, *open_alerts])},
        )
        yield _gauge("mspbyte_tenants", "Tenants registered in the app database.", None, {None: tenant_count})
        statuses = flags.statuses()
        yield _gauge(
            "mspbyte_feature_flags",
            "Global value of each feature flag (1 on, 0 off).",
            "flag",
            {s.flag: int(s.global_enabled) for s in statuses},
        )
        yield _gauge(
            "mspbyte_feature_rollout_percentage",
            "Rollout percentage of each feature flag.",
            "flag",
            {s.flag: s.rollout for s in statuses},
        )

    @staticmethod
    def _ledger_metrics(figures: Figures) -> Iterator[Metric]:
        passes = _by(figures, "passes", PASS_STATUSES)
        yield _counter(
            "mspbyte_pipeline_executions_total",
            "Tenant passes that ran, by outcome (success, failure); a running pass counts when it ends.",
            "status",
            {label: passes[status] for status, label in EXECUTION_STATUS.items()},
        )
        yield _counter(
            "mspbyte_pipeline_passes_not_run_total",
            "Tenant passes that did not run, by reason: held by the empty-sync guard, skipped (another run "
            "held the tenant's lease), accepted_drop (an operator let a held drop through).",
            "reason",
            {
                reason: passes.get(reason, 0)
                for reason in dict.fromkeys([*NOT_RUN, *passes])
                if reason not in EXECUTION_STATUS
            },
        )
        duration = HistogramMetricFamily(
            "mspbyte_pipeline_duration_seconds",
            "Duration of tenant passes that ran, by outcome (for quantiles; mspbyte_pipeline_duration_ms is "
            "each tenant's latest).",
            labels=["status"],
        )
        for status, label in EXECUTION_STATUS.items():
            buckets = [(floatToGoString(le), figures["bucket", status, le]) for le in DURATION_BUCKETS]
            duration.add_metric([label], [*buckets, ("+Inf", passes[status])], figures["duration_ms", status] / 1000)
        yield duration
        yield _counter(
            "mspbyte_stage_executions_total",
            "Stages completed by ended passes, by stage.",
            "stage",
            _by(figures, "stage_runs", STAGES),
        )
        yield _counter(
            "mspbyte_stage_duration_seconds_total",
            "Seconds spent in completed stages, by stage.",
            "stage",
            {k: v / 1000 for k, v in _by(figures, "stage_ms", STAGES).items()},
        )
        yield _counter(
            "mspbyte_stage_queries_total",
            "Database queries of completed stages, by stage.",
            "stage",
            _by(figures, "stage_queries", STAGES),
        )
        yield _counter(
            "mspbyte_queries_total", "Database queries issued by ended passes.", None, {None: figures["queries"]}
        )
        yield _counter(
            "mspbyte_slow_queries_total",
            "Queries slower than SLOW_QUERY_THRESHOLD_MS in ended passes.",
            None,
            {None: figures["slow_queries"]},
        )
