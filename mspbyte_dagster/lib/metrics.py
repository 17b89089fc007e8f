"""Prometheus metrics of the pipeline, read from the app database on every scrape.

The old exporter kept capped in-memory lists, so its counters went down when
records aged out [k15]. Here every counter is a sum over durable rows: the
pipeline ledger (one row per tenant pass) and alert_events, both append-only.
A ledger row counts once its pass has ended, and an ended row never changes,
so a counter never goes down, across scrapes and across restarts alike.

Cheap scrapes: each append-only table is split at a high-water mark. Rows at or
below it can no longer change; their totals are aggregated once (in SQL) and
kept in the collector. A scrape aggregates, in SQL, only the rows above the
mark. The mark moves to the highest id seen `settle_after` ago: by then every
transaction that could still commit a lower id, or end a pass, has finished
(a pass is bounded by JOB_TIMEOUT_MS, far below the default day). After a
restart the first scrape aggregates everything once; the figures are the same.

The Pushgateway side (`push_run_figures`) sends one run's figures, for runs
that end before a scrape would see them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from functools import cache
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, Engine, Numeric, Table, case, cast, create_engine, func, select, true
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mspbyte_dagster.lib.alerts import ACTIONS
from mspbyte_dagster.lib.analysis.common import SEVERITY_RANK
from mspbyte_dagster.lib.flag_store import flag_store, load_flags
from mspbyte_dagster.lib.flags import FeatureFlagManager, FlagDefault
from mspbyte_dagster.lib.pipeline import STAGES
from mspbyte_dagster.lib.store.db import SQLITE_BUSY_TIMEOUT_MS, DatabaseNotReadyError, engine_for, require_migrated
from mspbyte_dagster.lib.store.schema import alert_events, alerts, pipeline_ledger, tenants

log = logging.getLogger(__name__)

RUNNING = "running"
# How a tenant pass ends (lib/pipeline.py); the ledger also holds `tenants accept-drop` rows.
# Known statuses are exported at 0 before their first row, so rate() has a start.
RUN_STATUSES = ("succeeded", "failed", "held", "skipped")
PASS_STATUSES = (*RUN_STATUSES, "accepted_drop")
SEVERITIES = tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.get, reverse=True))
# Pass durations in seconds: a small tenant passes in about 0.1 s, a 10,000-user one in seconds to
# tens of seconds, and JOB_TIMEOUT_MS stops a run at 600 s by default. Steps of about x2 to x2.5
# keep histogram_quantile within a factor of two anywhere in that range, with 12 buckets per status.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SETTLE_AFTER = timedelta(days=1)
PUSH_JOB = "tenant_pipeline"

Figures = Counter  # (figure name, *labels) -> value; sums over an id range add up with +


# --- aggregate queries: every one grouped, over an id range of one append-only table --------------


def _id_range(table: Table, after: int, upto: int | None) -> list:
    bounds = [table.c.id > after]
    if upto is not None:
        bounds.append(table.c.id <= upto)
    return bounds


def _json_number(dialect: str, value, key: str):
    """A number field of a JSON object column: the one place SQLite and PostgreSQL differ."""
    if dialect == "postgresql":
        return cast(value.op("->>")(key), Numeric)
    return func.json_extract(value, f"$.{key}")


def ledger_figures(conn: Connection, after: int, upto: int | None) -> Figures:
    """Ended passes with after < id <= upto: counts, durations, queries, and per stage from the stages JSON."""
    c = pipeline_ledger.c
    ended = [c.status != RUNNING, *_id_range(pipeline_ledger, after, upto)]
    buckets = [func.sum(case((c.duration_ms <= round(le * 1000), 1), else_=0)) for le in DURATION_BUCKETS]
    per_status = (
        select(c.status, func.count(), func.sum(c.duration_ms), func.sum(c.queries), func.sum(c.slow_queries), *buckets)
        .where(*ended)
        .group_by(c.status)
    )
    figures = Figures()
    for status, passes, duration_ms, queries, slow, *in_buckets in conn.execute(per_status):
        figures["passes", status] += passes
        figures["duration_ms", status] += float(duration_ms or 0)
        figures["queries"] += int(queries or 0)
        figures["slow_queries"] += int(slow or 0)
        for le, count in zip(DURATION_BUCKETS, in_buckets, strict=True):
            figures["bucket", status, le] += int(count or 0)

    dialect = conn.dialect.name
    stage = func.json_each(c.stages).table_valued("key", "value")
    per_stage = (
        select(
            stage.c.key,
            func.count(),
            func.sum(_json_number(dialect, stage.c.value, "milliseconds")),
            func.sum(_json_number(dialect, stage.c.value, "queries")),
        )
        .select_from(pipeline_ledger.join(stage, true()))
        .where(*ended)
        .group_by(stage.c.key)
    )
    for name, runs, milliseconds, queries in conn.execute(per_stage):
        if name in STAGES:  # the comparison report sits in the same JSON and is no stage
            figures["stage_runs", name] += runs
            figures["stage_ms", name] += float(milliseconds or 0)
            figures["stage_queries", name] += int(queries or 0)
    return figures


def alert_event_figures(conn: Connection, after: int, upto: int | None) -> Figures:
    """Alert events with after < id <= upto, by action."""
    query = (
        select(alert_events.c.action, func.count())
        .where(*_id_range(alert_events, after, upto))
        .group_by(alert_events.c.action)
    )
    return Figures({("alerts", action): count for action, count in conn.execute(query)})


class SettledTotals:
    """Totals of one append-only table: kept for rows at or below a high-water mark, read above it.

    Each read notes the highest id visible then. A note older than `settle_after` vouches that every
    row up to its id is committed and ended, so those rows are folded into the kept totals and never
    read again. A pass still running past that age counts as abandoned (its process died).
    """

    def __init__(
        self, table: Table, aggregate: Callable[[Connection, int, int | None], Figures], settle_after: timedelta
    ):
        self._table, self._aggregate = table, aggregate
        self._settle_after = settle_after.total_seconds()
        self._mark = 0
        self._settled = Figures()
        self._notes: deque[tuple[float, int]] = deque()  # (monotonic time, highest id then)

    def read(self, conn: Connection, now: float) -> Figures:
        highest = conn.execute(select(func.max(self._table.c.id))).scalar() or 0
        if not self._notes or self._notes[-1][1] != highest:
            self._notes.append((now, highest))
        settled_to = None
        while self._notes and now - self._notes[0][0] >= self._settle_after:
            settled_to = self._notes.popleft()[1]
        if settled_to is not None and settled_to > self._mark:
            self._settled += self._aggregate(conn, self._mark, settled_to)
            self._mark = settled_to
        return self._settled + self._aggregate(conn, self._mark, None)


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

    def __init__(self, engine: Engine, flags: Callable[[], FeatureFlagManager], settle_after: timedelta = SETTLE_AFTER):
        self._engine, self._flags = engine, flags
        self._ledger = SettledTotals(pipeline_ledger, ledger_figures, settle_after)
        self._events = SettledTotals(alert_events, alert_event_figures, settle_after)
        self._started = time.monotonic()
        self._lock = threading.Lock()  # scrapes may overlap; the high-water marks move one at a time

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "mspbyte_uptime_seconds",
            "Seconds since this exporter started.",
            None,
            {None: time.monotonic() - self._started},
        )
        try:
            with self._lock, self._engine.connect() as conn:
                now = time.monotonic()
                ledger, events = self._ledger.read(conn, now), self._events.read(conn, now)
                open_alerts = dict(
                    conn.execute(
                        select(alerts.c.severity, func.count())
                        .where(alerts.c.status == "active")
                        .group_by(alerts.c.severity)
                    ).all()
                )
                tenant_count = conn.execute(select(func.count()).select_from(tenants)).scalar_one()
            flags = self._flags()
        except SQLAlchemyError as error:
            log.warning("metrics: the app database did not answer (%s)", type(error).__name__)
            yield _gauge("mspbyte_database_up", "1 when the app database answered this scrape.", None, {None: 0})
            return
        yield _gauge("mspbyte_database_up", "1 when the app database answered this scrape.", None, {None: 1})
        yield from self._ledger_metrics(ledger)
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
            "Tenant passes that ended, by how they ended (ledger rows; a running pass counts when it ends).",
            "status",
            passes,
        )
        duration = HistogramMetricFamily(
            "mspbyte_pipeline_duration_seconds",
            "Duration of ended tenant passes, by how they ended.",
            labels=["status"],
        )
        for status, count in passes.items():
            buckets = [(floatToGoString(le), figures["bucket", status, le]) for le in DURATION_BUCKETS]
            duration.add_metric([status], [*buckets, ("+Inf", count)], figures["duration_ms", status] / 1000)
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


# --- reading the database, health, and the HTTP endpoint -------------------------------------------


@cache
def read_engine(url: str) -> Engine:
    """The engine the exporter reads with.

    On SQLite, plain autocommit reads on an existing file: the app's engine begins every transaction
    IMMEDIATE (a write lock), so a scrape or a health check would wait behind a whole tenant pass;
    in WAL mode a plain read runs beside the writer. PostgreSQL readers never wait: its engine serves.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return engine_for(url)
    uri = Path(parsed.database).absolute().as_uri()  # file:///... ; mode=rw never creates a missing file
    return create_engine(
        f"sqlite:///{uri}?mode=rw&uri=true",
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None},
    )


def database_health(engine: Engine) -> tuple[bool, str]:
    """Whether the app database answers with the code's schema, and if not, why."""
    try:
        require_migrated(engine)
    except DatabaseNotReadyError as error:
        return False, str(error)
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [""])[0]
        where = engine.url.render_as_string(hide_password=True)
        return False, f"the app database {where} does not answer: {type(cause).__name__}: {first_line}"
    return True, "the app database answers"


def metrics_app(engine: Engine, registry: CollectorRegistry) -> Callable:
    """WSGI: /metrics (text format 0.0.4 unless the scraper asks for another) and /health."""
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/health":
            healthy, detail = database_health(engine)
            status = "200 OK" if healthy else "503 Service Unavailable"
            body = {"status": "ok" if healthy else "unavailable", "detail": detail}
        else:
            status, body = "404 Not Found", {"status": "not found", "detail": "use /metrics or /health"}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002  (the stdlib's signature)
        log.debug("metrics http: " + format, *args)


class MetricsServer:
    """/metrics and /health over HTTP, served from a thread; port 0 takes any free port."""

    def __init__(self, engine: Engine, collector: Collector, host: str = "127.0.0.1", port: int = 9090):
        self.engine = engine
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self._app = metrics_app(engine, self.registry)
        self._host, self._port = host, port
        self._server: _Server | None = None

    def start(self) -> MetricsServer:
        server_class = _Server6 if ":" in self._host else _Server
        self._server = make_server(self._host, self._port, self._app, server_class, _QuietHandler)
        threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def metrics_server(
    database_url: str,
    flag_defaults: dict[str, FlagDefault],
    redis_url: str | None = None,
    namespace: str | None = None,
    host: str = "127.0.0.1",
    port: int = 9090,
    settle_after: timedelta = SETTLE_AFTER,
) -> MetricsServer:
    """The exporter of `mspbyte metrics serve`: the app database read as above, flags from their store."""
    engine = read_engine(database_url)
    store = flag_store(redis_url, engine, namespace)
    collector = PipelineCollector(engine, lambda: load_flags(store, flag_defaults), settle_after)
    return MetricsServer(engine, collector, host, port)


# --- Pushgateway --------------------------------------------------------------------------------------


class PassFigures(Protocol):
    """What a run reports per tenant (lib.pipeline.TenantPass has it)."""

    tenant: str
    status: str
    duration_ms: int
    queries: int
    slow_queries: int


def push_run_figures(gateway_url: str, run_id: str, results: Sequence[PassFigures], timeout: float = 10.0) -> None:
    """Push one run's figures to a Pushgateway, grouped by job="tenant_pipeline" and run_id.

    PUT replaces the run's group, so pushing again for the same run never double counts. Raises
    OSError (urllib's URLError included) when the gateway cannot be reached or refuses.
    """
    registry = CollectorRegistry()
    by_status = Counter(result.status for result in results)
    tenants_gauge = Gauge(
        "mspbyte_run_tenants", "Tenants of the run, by how their pass ended.", ["status"], registry=registry
    )
    for status in dict.fromkeys([*RUN_STATUSES, *by_status]):
        tenants_gauge.labels(status).set(by_status[status])
    for name, documentation, value in (
        (
            "mspbyte_run_duration_seconds",
            "Seconds the run's tenant passes took, summed.",
            sum(r.duration_ms for r in results) / 1000,
        ),
        ("mspbyte_run_queries", "Database queries of the run's tenant passes.", sum(r.queries for r in results)),
        ("mspbyte_run_slow_queries", "Slow queries of the run's tenant passes.", sum(r.slow_queries for r in results)),
    ):
        Gauge(name, documentation, registry=registry).set(value)
    push_to_gateway(gateway_url, job=PUSH_JOB, registry=registry, grouping_key={"run_id": run_id}, timeout=timeout)
