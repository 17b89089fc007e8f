"""Prometheus metrics: /metrics and /health scraped over real HTTP, on both databases; the Pushgateway push."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, materialize
from dagster_prometheus import PrometheusResource
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from mspbyte_dagster.cli import main
from mspbyte_dagster.defs.assets import tenant_pipeline
from mspbyte_dagster.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, TENANTS
from mspbyte_dagster.defs.resources import resources_from_env
from mspbyte_dagster.lib.flag_store import DatabaseFlagStore
from mspbyte_dagster.lib.flags import FLAG_DEFAULTS, FLAGS
from mspbyte_dagster.lib.metrics.server import metrics_server
from mspbyte_dagster.lib.pipeline import STAGES, PassOptions, TenantPass, run_tenant_pass
from mspbyte_dagster.lib.store import ledger, metric_totals
from mspbyte_dagster.lib.store.alert_store import list_alerts, suppress_alert
from mspbyte_dagster.lib.store.db import engine_for
from mspbyte_dagster.lib.store.retention import Retention, prune_tenant
from mspbyte_dagster.lib.store.schema import alert_events, pipeline_ledger, snapshots
from mspbyte_dagster_tests.snapshots import import_files, minimal_files

TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
CUMULATIVE = ("counter", "histogram")


def get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def scrape(base_url: str, types: tuple[str, ...] | None = None) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, sorted labels): value}, optionally of some metric types only."""
    status, content_type, body = get(f"{base_url}/metrics")
    assert status == 200 and content_type == TEXT_0_0_4
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        if types is None or family.type in types
        for sample in family.samples
    }


def value(samples: dict[tuple, float], name: str, **labels) -> float:
    return samples[name, tuple(sorted(labels.items()))]


@contextmanager
def exporter(database_url: str, **options):
    """The exporter `mspbyte metrics serve` runs, on a free loopback port."""
    with metrics_server(database_url, FLAG_DEFAULTS, port=0, **options) as server:
        yield server.url


@pytest.fixture
def contoso(engine, tmp_path):
    """One imported tenant; its pass raises alerts (two users without MFA)."""
    return import_files(engine, tmp_path / "store", minimal_files("contoso"))


def run_pass(engine, run_id: str | None = None) -> TenantPass:
    return run_tenant_pass(engine, "contoso", STAGES, PassOptions(run_id=run_id))


def test_executions_and_stage_figures_sum_the_ended_passes(engine, database_url, contoso):
    results = [run_pass(engine, "run-1") for _ in range(2)]
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    with engine.connect() as conn:
        rows = ledger.passes_of_run(conn, ["contoso"], "run-1")
    started = time.monotonic()
    with exporter(database_url) as url:
        samples = scrape(url)
    uptime = time.monotonic() - started
    assert value(samples, "mspbyte_pipeline_executions_total", status="success") == 2
    assert value(samples, "mspbyte_pipeline_executions_total", status="failure") == 0
    assert value(samples, "mspbyte_pipeline_duration_seconds_count", status="success") == 2
    assert value(samples, "mspbyte_pipeline_duration_seconds_bucket", status="success", le="+Inf") == 2
    assert value(samples, "mspbyte_pipeline_duration_seconds_sum", status="success") == pytest.approx(
        sum(r.duration_ms for r in results) / 1000
    )
    for stage in STAGES:
        assert value(samples, "mspbyte_stage_executions_total", stage=stage) == 2
        assert value(samples, "mspbyte_stage_duration_seconds_total", stage=stage) == pytest.approx(
            sum(r.stages[stage]["milliseconds"] for r in results) / 1000
        )
        assert value(samples, "mspbyte_stage_queries_total", stage=stage) == sum(
            r.stages[stage]["queries"] for r in results
        )
    # the ledger's figures: TenantPass.queries also counts the statement that writes the ledger row
    assert value(samples, "mspbyte_queries_total") == sum(row.queries for row in rows)
    assert value(samples, "mspbyte_slow_queries_total") == sum(row.slow_queries for row in rows)
    assert value(samples, "mspbyte_pipeline_duration_ms", tenant="contoso") == results[-1].duration_ms
    for reason in ("held", "skipped", "accepted_drop"):  # passes that did not run count apart, at 0 here
        assert value(samples, "mspbyte_pipeline_passes_not_run_total", reason=reason) == 0
    assert value(samples, "mspbyte_tenants") == 1
    assert value(samples, "mspbyte_database_up") == 1
    assert 0 < value(samples, "mspbyte_uptime_seconds") < uptime  # since this exporter started, not before


@pytest.mark.slow
def test_a_running_pass_counts_once_it_ends(engine, database_url, contoso):
    with engine.begin() as conn:
        ledger_id = ledger.start_pass(conn, "contoso", "run-1", datetime.now(UTC), "test-host:1")
    with exporter(database_url) as url:
        while_running = scrape(url)
        assert (
            sum(value(while_running, "mspbyte_pipeline_executions_total", status=s) for s in ("success", "failure"))
            == 0
        )
        with engine.begin() as conn:
            ledger.finish_pass(
                conn,
                ledger_id,
                "contoso",
                status="failed",
                reason="boom",
                duration_ms=700,
                queries=3,
                slow_queries=1,
                stages={},
            )
        ended = scrape(url)
    assert value(ended, "mspbyte_pipeline_executions_total", status="failure") == 1
    assert value(ended, "mspbyte_pipeline_duration_seconds_bucket", status="failure", le="0.5") == 0
    assert value(ended, "mspbyte_pipeline_duration_seconds_bucket", status="failure", le="1.0") == 1
    assert value(ended, "mspbyte_queries_total") == 3 and value(ended, "mspbyte_slow_queries_total") == 1
    assert value(ended, "mspbyte_pipeline_duration_ms", tenant="contoso") == 700


@pytest.mark.slow
def test_counters_never_go_down_across_scrapes_restarts_folding_and_pruning(engine, database_url, contoso):
    """Durable totals below the mark plus the live rows above it equal a full recount, and only grow."""
    with exporter(database_url) as url:
        run_pass(engine)
        first = scrape(url, CUMULATIVE)
        with engine.begin() as conn:  # the next pass cannot read its snapshot: it fails and is rolled back
            conn.execute(update(snapshots).where(snapshots.c.tenant == "contoso").values(unreadable="lost"))
        assert run_pass(engine).status == "failed"
        second = scrape(url, CUMULATIVE)
        assert all(second[key] >= first[key] for key in first)
        assert value(second, "mspbyte_pipeline_executions_total", status="failure") == 1
        later = datetime.now(UTC) + timedelta(days=3)  # every row has settled and left its window
        with engine.begin() as conn:
            metric_totals.fold(conn, later)
            pruned = prune_tenant(conn, "contoso", Retention(1, 1, 1), later)
        assert pruned["ledger_rows"] == 1  # the failed pass; the successful one is the guard's baseline
        assert scrape(url, CUMULATIVE) == second
    with exporter(database_url) as restarted:
        assert scrape(restarted, CUMULATIVE) == second


def test_alerts_total_counts_alert_events_and_open_alerts_follow_status(engine, database_url, contoso):
    run_pass(engine)
    with engine.begin() as conn:
        first = list_alerts(conn, "contoso", "active")[0]
        now = datetime.now(UTC)
        suppress_alert(conn, first["id"], "known", now + timedelta(days=7), now)
    with engine.connect() as conn:
        events = dict(conn.execute(select(alert_events.c.action, func.count()).group_by(alert_events.c.action)).all())
        active = Counter(alert["severity"] for alert in list_alerts(conn, None, "active"))
    with exporter(database_url) as url:
        samples = scrape(url)
    assert events["created"] >= 1 and events["suppressed"] == 1
    for action, count in events.items():
        assert value(samples, "mspbyte_alerts_total", action=action) == count
    for severity in ("critical", "high", "medium", "low"):
        assert value(samples, "mspbyte_alerts_open", severity=severity) == active[severity]


def test_flag_gauges_follow_a_runtime_change(engine, database_url):
    store = DatabaseFlagStore(engine)
    with exporter(database_url) as url:
        before = scrape(url)
        store.set_enabled("comparison_mode", True)
        store.set_rollout("comparison_mode", 25)
        store.set_enabled("new_pipeline", False)
        after = scrape(url)
    for flag in FLAGS:
        assert value(before, "mspbyte_feature_flags", flag=flag) == FLAG_DEFAULTS[flag].enabled
        assert value(before, "mspbyte_feature_rollout_percentage", flag=flag) == FLAG_DEFAULTS[flag].rollout
    assert value(after, "mspbyte_feature_flags", flag="comparison_mode") == 1
    assert value(after, "mspbyte_feature_rollout_percentage", flag="comparison_mode") == 25
    assert value(after, "mspbyte_feature_flags", flag="new_pipeline") == 0


def test_health_answers_200_when_the_database_answers(database_url):
    with exporter(database_url) as url:
        status, _, body = get(f"{url}/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_health_answers_503_with_the_reason_when_the_database_is_missing(postgres_admin_url):
    name = f"mspbyte_missing_{uuid.uuid4().hex[:10]}"
    missing = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    with exporter(missing) as url:
        status, _, body = get(f"{url}/health")
        samples = scrape(url)
    assert status == 503 and name in json.loads(body)["detail"]
    assert value(samples, "mspbyte_database_up") == 0


def test_a_missing_sqlite_file_is_reported_not_created(tmp_path):
    path = tmp_path / "absent.db"
    with exporter(f"sqlite:///{path}") as url:
        status, _, body = get(f"{url}/health")
    assert status == 503 and json.loads(body)["status"] == "unavailable" and not path.exists()


def test_sqlite_scrapes_do_not_wait_for_a_pass_holding_the_write_lock(sqlite_url):
    """A pass holds SQLite's write lock for its whole transaction; scrapes and health checks read beside it."""
    with engine_for(sqlite_url).begin(), exporter(sqlite_url) as url:  # BEGIN IMMEDIATE, held open
        assert value(scrape(url), "mspbyte_database_up") == 1
        assert get(f"{url}/health")[0] == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_command_serves_on_metrics_port(app_env, engine, contoso, monkeypatch):
    assert run_pass(engine).status == "succeeded"
    port = free_port()
    monkeypatch.setenv("METRICS_PORT", str(port))
    command = [str(Path(sys.executable).parent / "mspbyte"), "metrics", "serve"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("Serving"), f"metrics serve ended early: {process.stderr.read()}"
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/metrics" in line
        assert value(scrape(url), "mspbyte_pipeline_executions_total", status="success") == 1
        assert get(f"{url}/health")[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_command_refuses_when_prometheus_is_disabled():
    result = CliRunner().invoke(main, ["metrics", "serve", "--port", "0"], env={"ENABLE_PROMETHEUS": "false"})
    assert result.exit_code == 2 and "ENABLE_PROMETHEUS" in result.stderr


class _GatewayRecorder(BaseHTTPRequestHandler):
    """Stands in for a Pushgateway: keeps each request and answers 200."""

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.command, self.path, self.headers["Content-Type"], body.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@contextmanager
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatewayRecorder)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def pushed_run(tags: dict, gateway_url: str):
    """A tenant_pipeline run whose Pushgateway resource points at `gateway_url`."""
    resources = resources_from_env() | {"prometheus": PrometheusResource(gateway=gateway_url, timeout=5)}
    return materialize([tenant_pipeline], instance=DagsterInstance.get(), resources=resources, tags=tags)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_tenants_latest_pass_replaces_its_own_group_on_the_gateway(app_env, tmp_path):
    engine = engine_for(app_env["DATABASE_URL"])
    for key in ("alpha", "bravo"):
        import_files(engine, tmp_path / key, minimal_files(key, users=5))
    DagsterInstance.get().add_dynamic_partitions(TENANTS, ["alpha", "bravo"])
    tags = {RANGE_START_TAG: "alpha", RANGE_END_TAG: "bravo"}
    with gateway() as recorder:
        host, port = recorder.server_address
        for _ in range(2):
            assert pushed_run(tags, f"http://{host}:{port}").success
    paths = [path for _, path, _, _ in recorder.requests]
    # Two runs, still one group per tenant: the second run's PUTs replace the first's.
    assert paths == ["/metrics/job/tenant_pipeline/tenant/alpha", "/metrics/job/tenant_pipeline/tenant/bravo"] * 2
    method, _, content_type, body = recorder.requests[-1]
    assert method == "PUT" and content_type == TEXT_0_0_4
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert value(samples, "mspbyte_tenant_pass_status", status="succeeded") == 1
    assert value(samples, "mspbyte_tenant_pass_status", status="failed") == 0
    last_queries = select(pipeline_ledger.c.queries).where(pipeline_ledger.c.tenant == "bravo")
    with engine.connect() as conn:
        queries = conn.execute(last_queries.order_by(pipeline_ledger.c.id.desc()).limit(1)).scalar_one()
    assert value(samples, "mspbyte_tenant_pass_queries") == queries > 0
    assert value(samples, "mspbyte_pipeline_duration_ms") > 0
    assert abs(value(samples, "mspbyte_tenant_pass_completed_timestamp_seconds") - time.time()) < 600


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_gateway_that_cannot_be_reached_is_a_warning_not_a_failed_run(app_env, tmp_path):
    import_files(engine_for(app_env["DATABASE_URL"]), tmp_path / "alpha", minimal_files("alpha", users=5))
    DagsterInstance.get().add_dynamic_partitions(TENANTS, ["alpha"])
    result = pushed_run({RANGE_START_TAG: "alpha", RANGE_END_TAG: "alpha"}, f"http://127.0.0.1:{free_port()}")
    assert result.success
    logged = [record.user_message for record in DagsterInstance.get().all_logs(result.run_id)]
    assert any(message.startswith("The Pushgateway did not take") for message in logged)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_passes_that_did_not_run_count_apart_from_executions(engine, database_url, contoso):
    assert run_pass(engine).status == "succeeded"
    for status in ("held", "skipped", "held"):
        with engine.begin() as conn:
            ledger_id = ledger.start_pass(conn, "contoso", "run-2", datetime.now(UTC), "test-host:1")
            ledger.finish_pass(
                conn, ledger_id, "contoso", status=status, reason="guard", duration_ms=5, queries=1, slow_queries=0
            )
    with exporter(database_url) as url:
        samples = scrape(url)
    assert value(samples, "mspbyte_pipeline_executions_total", status="success") == 1  # the guide's rate stays 1
    assert value(samples, "mspbyte_pipeline_executions_total", status="failure") == 0
    assert value(samples, "mspbyte_pipeline_passes_not_run_total", reason="held") == 2
    assert value(samples, "mspbyte_pipeline_passes_not_run_total", reason="skipped") == 1
    assert value(samples, "mspbyte_pipeline_duration_ms", tenant="contoso") > 5  # the latest pass that ran


def test_health_reports_each_part_and_which_the_configuration_requires(sqlite_url, redis_url, nats_url):
    with exporter(sqlite_url) as url:  # neither REDIS_URL nor NATS_URL: only the app database is required
        status, _, body = get(f"{url}/health")
    parts = json.loads(body)["parts"]
    assert status == 200 and parts["database"] == {"required": True, "ok": True, "detail": "the app database answers"}
    assert parts["redis"]["required"] is False and "REDIS_URL unset" in parts["redis"]["detail"]
    assert parts["nats"]["required"] is False and "NATS_URL unset" in parts["nats"]["detail"]
    with exporter(sqlite_url, redis_url=redis_url, nats_url=nats_url) as url:
        status, _, body = get(f"{url}/health")
    parts = json.loads(body)["parts"]
    assert status == 200 and parts["redis"]["required"] and parts["redis"]["ok"]
    assert parts["nats"]["required"] and parts["nats"]["ok"] and "answers" in parts["nats"]["detail"]


def test_health_is_503_naming_a_required_part_that_does_not_answer(sqlite_url):
    port = free_port()
    with exporter(sqlite_url, redis_url=f"redis://:pw-value@127.0.0.1:{port}/0") as url:
        status, _, body = get(f"{url}/health")
    answer = json.loads(body)
    assert status == 503 and answer["status"] == "unavailable"
    assert answer["parts"]["redis"]["ok"] is False and f"Redis at 127.0.0.1:{port} does not answer" in answer["detail"]
    assert answer["parts"]["database"]["ok"] and "pw-value" not in body


def test_a_fold_is_due_once_the_oldest_unfolded_row_has_settled(engine, contoso):
    assert run_pass(engine).status == "succeeded"  # a ledger row and alert events, none folded
    now = datetime.now(UTC)
    late = now + metric_totals.SETTLE_AFTER + metric_totals.FOLD_EVERY + timedelta(minutes=1)
    with engine.begin() as conn:
        assert not metric_totals.fold_due(conn, now, metric_totals.marks(conn))  # too young to fold
        assert metric_totals.fold_due(conn, late, metric_totals.marks(conn))
        folded = metric_totals.fold(conn, late)
        assert folded == metric_totals.marks(conn)
        assert not metric_totals.fold_due(conn, late, folded)  # nothing left above the marks
