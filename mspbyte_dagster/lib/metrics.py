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

The Pushgateway side (`push_run_figures`) sends one run's figures, for runs
that end before a scrape would see them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app, push_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, Engine, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from mspbyte_dagster.lib.alerts import ACTIONS
from mspbyte_dagster.lib.analysis.common import SEVERITY_RANK
from mspbyte_dagster.lib.flag_store import flag_store, load_flags
from mspbyte_dagster.lib.flags import FeatureFlagManager, FlagDefault
from mspbyte_dagster.lib.model import STAGES
from mspbyte_dagster.lib.store.db import SQLITE_BUSY_TIMEOUT_MS, DatabaseNotReadyError, engine_for, require_migrated
from mspbyte_dagster.lib.store.metric_totals import DURATION_BUCKETS, Figures, current_figures
from mspbyte_dagster.lib.store.schema import alerts, tenants

log = logging.getLogger(__name__)

# How a tenant pass ends (lib/pipeline.py); the ledger also holds `tenants accept-drop` rows.
# Known statuses are exported at 0 before their first row, so rate() has a start.
RUN_STATUSES = ("succeeded", "failed", "held", "skipped")
PASS_STATUSES = (*RUN_STATUSES, "accepted_drop")
SEVERITIES = tuple(sorted(SEVERITY_RANK, key=SEVERITY_RANK.get, reverse=True))
PUSH_JOB = "tenant_pipeline"


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
) -> MetricsServer:
    """The exporter of `mspbyte metrics serve`: the app database read as above, flags from their store."""
    engine = read_engine(database_url)
    store = flag_store(redis_url, engine, namespace)
    collector = PipelineCollector(engine, lambda: load_flags(store, flag_defaults))
    return MetricsServer(engine, collector, host, port)


# --- Pushgateway --------------------------------------------------------------------------------------


class PassFigures(Protocol):
    """What a run reports per tenant (lib.passes.TenantPass has it)."""

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
